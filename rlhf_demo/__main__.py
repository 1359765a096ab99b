from rlhf_demo.cli.main import main

raise SystemExit(main())
