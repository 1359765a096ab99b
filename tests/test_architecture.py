"""The shape of the package: the core never imports gradio (the UI is a thin face over it, and the CLI
works without it); UI and plot modules never import torch (they lay out, wire and draw); every file
stays one concept."""

import ast
import subprocess
import sys
from pathlib import Path

import rlhf_demo

PKG = Path(rlhf_demo.__file__).parent
MODULES = sorted(".".join(p.relative_to(PKG.parent).with_suffix("").parts) for p in PKG.rglob("*.py") if p.stem != "__main__")
CORE = [m for m in MODULES if not m.startswith("rlhf_demo.ui")]
THIN = [p for p in PKG.rglob("*.py") if p.parent.name in ("ui", "plots")]


def test_core_modules_do_not_import_gradio():
    code = (
        "import importlib, sys\n"
        f"for m in {CORE!r}: importlib.import_module(m)\n"
        "from rlhf_demo.cli.main import build_parser; build_parser()\n"
        "bad = sorted(m for m in sys.modules if m == 'gradio' or m.startswith('gradio.'))\n"
        "print('GRADIO' if bad else 'CLEAN')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PKG.parent, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("CLEAN")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_ui_and_plot_modules_do_not_import_torch():
    assert THIN, "no ui/ or plots/ modules found"
    bad = {
        str(p.relative_to(PKG)): sorted(m for m in _imports(p) if m.split(".")[0] in ("torch", "transformers", "peft", "trl")) for p in THIN
    }
    assert not {k: v for k, v in bad.items() if v}, bad


def test_every_file_is_at_most_400_lines():
    long = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def test_cli_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "rlhf_demo", "--help"], capture_output=True, text=True, cwd=PKG.parent, timeout=300)
    assert out.returncode == 0
    for cmd in ("generate", "train", "preferences", "kl"):
        assert cmd in out.stdout
