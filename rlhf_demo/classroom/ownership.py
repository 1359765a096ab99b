"""Whose run is whose, and which runs the teacher pinned for the class: small JSON files beside the
runs, so both survive a restart of the server.

    RUNS/.class/owners/<run name>.json   {"owner": USER_ID, "nickname": ..., "time": ...}
    RUNS/.class/pins.json                ["<run name>", ...]

A run folder written by the command line (no owner file) belongs to the teacher: on a shared server
only the teacher sees it until it is pinned. The shipped examples (outside RUNS) are everyone's.
Every write is atomic (a temporary file, then a rename).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

_LOCK = threading.Lock()


class OwnershipError(ValueError):
    """A run action refused: the run is not yours, not a run, or still training."""


def _write_atomic(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)


def _read(path: Path, default):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return default


class ClassRecord:
    """Owners and pins of the runs under ``runs_dir``."""

    def __init__(self, runs_dir: str | Path):
        self.runs_dir = Path(runs_dir)
        self.dir = self.runs_dir / ".class"

    # ------------------------------------------------------------------ owners
    def _owner_file(self, run: Path) -> Path:
        return self.dir / "owners" / f"{Path(run).name}.json"

    def set_owner(self, run: str | Path, owner_id: str, nickname: str) -> None:
        _write_atomic(self._owner_file(Path(run)), {"owner": owner_id, "nickname": nickname, "time": time.strftime("%Y-%m-%d %H:%M:%S")})

    def owner(self, run: str | Path) -> dict:
        """{"owner", "nickname", "time"} of a run in ``runs_dir``; {} for a run nobody in the class started."""
        run = Path(run)
        if not self.inside(run):
            return {}
        rec = _read(self._owner_file(run), {})
        return rec if isinstance(rec, dict) else {}

    def inside(self, run: str | Path) -> bool:
        """Whether ``run`` is a direct child folder of ``runs_dir`` (compared as paths, no links followed)."""
        run = Path(os.path.abspath(run))
        return run.parent == Path(os.path.abspath(self.runs_dir)) and not run.name.startswith(".")

    # ------------------------------------------------------------------ pins
    def pins(self) -> list[str]:
        pins = _read(self.dir / "pins.json", [])
        return [p for p in pins if isinstance(p, str)] if isinstance(pins, list) else []

    def pinned(self, run: str | Path) -> bool:
        return self.inside(run) and Path(run).name in self.pins()

    def pin(self, run: str | Path, on: bool = True) -> None:
        if not self.inside(run):
            raise OwnershipError("only runs of this server can be pinned")
        with _LOCK:
            pins = [p for p in self.pins() if p != Path(run).name]
            if on:
                pins.append(Path(run).name)
            _write_atomic(self.dir / "pins.json", pins)

    # ------------------------------------------------------------------ delete
    def delete(self, run: str | Path) -> None:
        """Remove a run folder of ``runs_dir`` with its owner record and pin."""
        run = Path(run)
        if not self.inside(run) or not (run / "config.json").exists() or run.is_symlink():
            raise OwnershipError("not a run of this server")
        with _LOCK:
            shutil.rmtree(run)
            self._owner_file(run).unlink(missing_ok=True)
            pins = self.pins()
            if run.name in pins:
                _write_atomic(self.dir / "pins.json", [p for p in pins if p != run.name])
