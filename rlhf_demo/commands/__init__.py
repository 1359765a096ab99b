"""One module per command line command (see ``rlhf_demo/cli.py``)."""
