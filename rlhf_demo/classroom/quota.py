"""Disk held within a quota on a shared server: run folders, downloads and temporary files.

- ``cached_zip(run, cache)``: a run's policy zipped once into a cache folder and reused by every later
  download of the same policy (the name carries the policy's modification time, so a new checkpoint
  makes a new zip); written to a temporary file, then renamed.
- ``export_path(filename)``: a fresh file for an export (CSV, zip) in ``exports_dir()``, under the
  downloads folder, so it is cleaned by age and counted in the quota (never a stray ``mkdtemp``).
- ``enforce(root, max_bytes, ...)``: files in the temporary folders older than ``max_age_s`` go first;
  then, while the run folders under ``root`` *and* the temporary folders (downloads, exports, Gradio's
  cache of uploads) take more than ``max_bytes``, the oldest temporary files go, then the oldest ended
  runs that are not pinned (a running run is never removed).
- ``cache_schedule()``: Gradio's ``Blocks(delete_cache=(frequency, age))`` for uploads and the files
  handlers return (Gradio copies them into its cache): removed ``age`` seconds after they were made.

``RLHF_DEMO_DISK_GB`` (default 5) and ``RLHF_DEMO_TMP_AGE_S`` (default 3600) set them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from rlhf_demo.runs.compare import zip_policy
from rlhf_demo.runs.state import run_state

DISK_ENV, TMP_AGE_ENV = "RLHF_DEMO_DISK_GB", "RLHF_DEMO_TMP_AGE_S"


def downloads_dir() -> Path:
    """Where downloads are built (under the temp dir, which Gradio may serve files from)."""
    return Path(tempfile.gettempdir()) / "rlhf-downloads"


def exports_dir() -> Path:
    """Where exports (metrics CSV, ...) are written: inside the downloads folder, cleaned with it."""
    return downloads_dir() / "exports"


def gradio_cache_dir() -> Path:
    """Gradio's cache of uploads and returned files (``GRADIO_TEMP_DIR``, else ``TMP/gradio``)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


def tmp_age_s() -> float:
    return float(os.environ.get(TMP_AGE_ENV, 3600))


def disk_bytes() -> float:
    return float(os.environ.get(DISK_ENV, 5)) * 1e9


def cache_schedule() -> tuple[int, int]:
    """``(frequency, age)`` in seconds for Gradio's ``delete_cache``: files older than the temp age go,
    checked every half of it (at least every second, at most every 10 minutes)."""
    age = max(1, int(tmp_age_s()))
    return max(1, min(600, age // 2)), age


def export_path(filename: str) -> Path:
    """A new file ``filename`` for an export, in its own folder under ``exports_dir()`` (cleaned by age
    and counted in the quota); the temporary folders are swept of old files first."""
    enforce(None, float("inf"), tmp_dirs=(downloads_dir(),), max_age_s=tmp_age_s())
    exports_dir().mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="export-", dir=exports_dir())) / Path(filename).name


def after_run(root: str | Path, pinned: set[str] = frozenset()) -> list[str]:
    """What the shared server does when a run ends: hold the runs, downloads, exports and uploads within the quota."""
    return enforce(root, disk_bytes(), pinned=pinned, tmp_dirs=(downloads_dir(),), counted=(gradio_cache_dir(),), max_age_s=tmp_age_s())


def folder_bytes(path: Path) -> int:
    total = 0
    for f in Path(path).rglob("*"):
        try:
            total += f.stat().st_size if f.is_file() else 0
        except OSError:  # removed meanwhile (Gradio cleans its cache on its own)
            continue
    return total


def _files(d: Path) -> list[Path]:
    return [f for f in Path(d).rglob("*") if f.is_file()] if Path(d).exists() else []


def _remove(f: Path, removed: list[str]) -> None:
    f.unlink(missing_ok=True)
    removed.append(str(f))
    parent = f.parent
    try:
        while parent.name.startswith("export-"):
            parent.rmdir()  # an emptied export folder goes too
            parent = parent.parent
    except OSError:
        pass


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
    for old in cache.glob(f"{run.name}-policy-*.zip"):  # older zips of the same run
        if old != path:
            old.unlink(missing_ok=True)
    return path


def enforce(
    root: str | Path | None,
    max_bytes: float,
    *,
    pinned: set[str] = frozenset(),
    tmp_dirs: tuple = (),
    counted: tuple = (),
    max_age_s: float = 3600.0,
    now: float | None = None,
) -> list[str]:
    """Remove what exceeds the quota; return what was removed (run names and file paths). ``tmp_dirs``
    are ours to clean; ``counted`` (Gradio's cache, which Gradio cleans itself) only count."""
    now = time.time() if now is None else now
    removed: list[str] = []
    tmp = []
    for d in tmp_dirs:
        for f in _files(d):
            try:
                st = f.stat()
            except OSError:
                continue
            if now - st.st_mtime > max_age_s:
                _remove(f, removed)
            else:
                tmp.append((st.st_mtime, st.st_size, f))
    root = Path(root) if root is not None else None
    runs = (
        sorted((p for p in root.iterdir() if p.is_dir() and (p / "config.json").exists()), key=lambda p: p.stat().st_mtime)
        if root is not None and root.exists()
        else []
    )  # oldest first
    sizes = {p: folder_bytes(p) for p in runs}
    total = sum(sizes.values()) + sum(size for _, size, _ in tmp) + sum(folder_bytes(d) for d in counted if Path(d).exists())
    for _, size, f in sorted(tmp, key=lambda t: t[0]):  # temporary files first, oldest first
        if total <= max_bytes:
            break
        _remove(f, removed)
        total -= size
    for run in runs:
        if total <= max_bytes:
            break
        if run.name in pinned or run_state(run)["status"] == "running":
            continue
        shutil.rmtree(run, ignore_errors=True)
        total -= sizes[run]
        removed.append(run.name)
    return removed
