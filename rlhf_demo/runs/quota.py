"""Disk held within a quota on a shared server: run folders, downloads and temporary files.

- ``cached_zip(run, cache)``: a run's policy zipped once into a cache folder and reused by every later
  download of the same policy (the name carries the policy's modification time, so a new checkpoint
  makes a new zip); written to a temporary file, then renamed.
- ``enforce(root, max_bytes, ...)``: when the run folders under ``root`` take more than ``max_bytes``,
  the oldest ended runs that are not pinned go first (a running run is never removed); files in the
  temporary folders older than ``max_age_s`` go too.

``RLHF_DEMO_DISK_GB`` (default 5) and ``RLHF_DEMO_TMP_AGE_S`` (default 3600) set them in shared mode.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from rlhf_demo.runs.compare import zip_policy
from rlhf_demo.runs.state import run_state

DISK_ENV, TMP_AGE_ENV = "RLHF_DEMO_DISK_GB", "RLHF_DEMO_TMP_AGE_S"


def downloads_dir() -> Path:
    """Where downloads are built (under the temp dir, which Gradio may serve files from)."""
    import tempfile

    return Path(tempfile.gettempdir()) / "rlhf-downloads"


def after_run(root: str | Path, pinned: set[str] = frozenset()) -> list[str]:
    """What the shared server does when a run ends: hold the runs and downloads within the quota."""
    return enforce(root, float(os.environ.get(DISK_ENV, 5)) * 1e9, pinned=pinned, tmp_dirs=(downloads_dir(),),
                   max_age_s=float(os.environ.get(TMP_AGE_ENV, 3600)))


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def cached_zip(run: str | Path, cache: str | Path) -> Path:
    """``RUN/policy`` with the run's config and summary, zipped once into ``cache`` and reused."""
    run, cache = Path(run), Path(cache)
    pol = run / "policy"
    if not pol.is_dir():
        raise FileNotFoundError(f"run {run.name!r} has no saved policy")
    stamp = int(max(f.stat().st_mtime for f in pol.rglob("*") if f.is_file()))
    path = cache / f"{run.name}-policy-{stamp}.zip"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    zip_policy(run, tmp)
    tmp.replace(path)
    for old in cache.glob(f"{run.name}-policy-*.zip"):   # older zips of the same run
        if old != path:
            old.unlink(missing_ok=True)
    return path


def enforce(root: str | Path, max_bytes: float, *, pinned: set[str] = frozenset(), tmp_dirs: tuple = (),
            max_age_s: float = 3600.0, now: float | None = None) -> list[str]:
    """Remove what exceeds the quota; return what was removed (run names and file paths)."""
    now = time.time() if now is None else now
    removed: list[str] = []
    for d in tmp_dirs:
        for f in Path(d).rglob("*") if Path(d).exists() else ():
            if f.is_file() and now - f.stat().st_mtime > max_age_s:
                f.unlink(missing_ok=True)
                removed.append(str(f))
    root = Path(root)
    if not root.exists():
        return removed
    runs = sorted((p for p in root.iterdir() if p.is_dir() and (p / "config.json").exists()),
                  key=lambda p: p.stat().st_mtime)                   # oldest first
    sizes = {p: folder_bytes(p) for p in runs}
    total = sum(sizes.values())
    for run in runs:
        if total <= max_bytes:
            break
        if run.name in pinned or run_state(run)["status"] == "running":
            continue
        shutil.rmtree(run, ignore_errors=True)
        total -= sizes[run]
        removed.append(run.name)
    return removed
