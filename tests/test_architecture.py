"""The core never imports gradio: the UI is a thin layer over it (the CLI must work without a UI)."""
import subprocess
import sys
from pathlib import Path

import rlhf_demo

PKG = Path(rlhf_demo.__file__).parent
CORE = sorted(p.stem for p in PKG.glob("*.py") if p.stem not in ("__init__", "__main__"))


def test_core_modules_do_not_import_gradio():
    code = (
        "import importlib, sys\n"
        f"for m in {CORE!r}: importlib.import_module('rlhf_demo.' + m)\n"
        "import rlhf_demo.commands\n"
        "from rlhf_demo.cli import build_parser; build_parser()\n"
        "bad = sorted(m for m in sys.modules if m == 'gradio' or m.startswith('gradio.'))\n"
        "print('GRADIO' if bad else 'CLEAN')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PKG.parent, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("CLEAN")


def test_cli_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "rlhf_demo", "--help"], capture_output=True, text=True,
                         cwd=PKG.parent, timeout=300)
    assert out.returncode == 0
    for cmd in ("generate", "train", "preferences", "kl"):
        assert cmd in out.stdout
