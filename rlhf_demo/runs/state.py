"""What state a run folder is in, read from the folder alone:

- ``finished`` / ``stopped`` / ``diverged`` / ``failed``: its ``summary.json`` says so;
- ``running``: no summary yet, and the process named in ``process.json`` is alive on this host;
- ``interrupted``: no summary, and that process is gone (killed, crashed, the machine restarted):
  its metrics up to the last step and its last checkpoint (``policy/``) are still usable.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from rlhf_demo.runs.folder import read_json

ENDED = ("finished", "stopped", "diverged", "failed")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def last_metrics(run: Path) -> dict:
    """The last complete line of ``metrics.jsonl`` (a torn last line is skipped)."""
    path = Path(run) / "metrics.jsonl"
    if not path.exists():
        return {}
    for line in reversed(path.read_text(encoding="utf-8").splitlines()):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    return {}


def run_state(run: str | Path) -> dict:
    """{name, path, algo, status, message, steps, checkpoint_step, last}: ``last`` is the last metrics record."""
    run = Path(run)
    cfg, summary, proc = read_json(run / "config.json"), read_json(run / "summary.json"), read_json(run / "process.json")
    last = last_metrics(run)
    steps = int(last.get("step", 0) or 0)
    ckpt = read_json(run / "policy" / "checkpoint.json").get("step")
    if summary.get("status") in ENDED:
        status, message = summary["status"], summary.get("message", "")
        steps = int(summary.get("steps", steps) or steps)
    elif proc and proc.get("host") == socket.gethostname() and _alive(int(proc.get("pid", -1))):
        status, message = "running", f"running, step {steps}"
    else:
        status = "interrupted"
        message = f"interrupted at step {steps}" + (f"; last checkpoint at step {ckpt}" if ckpt else "; no checkpoint")
    has_policy = (run / "policy" / "adapter_config.json").exists() or (run / "policy" / "config.json").exists()
    return {
        "name": run.name,
        "path": str(run),
        "algo": cfg.get("algo", "?"),
        "status": status,
        "message": message,
        "steps": steps,
        "checkpoint_step": ckpt,
        "policy": str(run / "policy") if has_policy else None,
        "last": {k: v for k, v in last.items() if isinstance(v, (int, float)) and not k.startswith("time/")},
    }
