"""Short names for the models and runs a page offers, so no server path reaches a page, a status line or
``/config``; each is resolved back to its folder on the server.

    "default"            the embedded base model (``models.loading``)
    "example-ppo"        a shipped example run (``assets/example-ppo``; as a model: its ``policy/``)
    "run:NAME"           a run folder NAME (as a model: its ``policy/``): one of the session's own runs
                         (``limits.Limits.own_runs``), else, in local use, ``$RLHF_DEMO_RUNS/NAME``
    "rm:example-reward"  a reward model: ``rm:`` + a shipped example's or a run's name (or ``rm:run:NAME``)

A typed folder or Hub id is passed through unchanged (local use: the CLI and tests name folders).
``shown`` is how a message names a model or run: "example-ppo (shipped)", "your run ppo-2026…".
Imports neither torch nor gradio nor pandas (``limits`` reads it).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"
RUNS_ENV = "RLHF_DEMO_RUNS"
DEFAULT_MODEL = "default"
RUN = "run:"
EXAMPLE = "example-"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,150}")


def runs_root() -> Path:
    """Where runs live: ``$RLHF_DEMO_RUNS`` (default ``./runs``)."""
    return Path(os.environ.get(RUNS_ENV, "runs")).expanduser()


def safe_name(name) -> bool:
    """One folder name (no separator, no '..'): the only thing a short name may hold."""
    return isinstance(name, str) and bool(_NAME.fullmatch(name)) and ".." not in name


def _key(path) -> str:
    return os.path.normpath(os.path.abspath(str(path)))


def example_run(name: str) -> Path | None:
    """``assets/NAME`` when NAME is a shipped example run (``example-*`` with a config.json)."""
    if safe_name(name) and name.startswith(EXAMPLE) and (ASSETS / name / "config.json").exists():
        return ASSETS / name
    return None


def find_run(name: str, own_runs=(), local: bool = True) -> Path | None:
    """The run folder a short run name means: an example, one of ``own_runs`` by its folder name, else
    (``local``) ``runs_root()/NAME`` when it exists. ``name`` may carry the ``run:`` prefix. A string
    compare only for ``own_runs``; nothing outside those folders is ever looked at."""
    if not isinstance(name, str):
        return None
    name = name.strip()
    bare = name[len(RUN) :] if name.startswith(RUN) else name
    if not safe_name(bare):
        return None
    if not name.startswith(RUN) and (ex := example_run(bare)) is not None:
        return ex
    for r in own_runs:
        if Path(r).name == bare:
            return Path(r)
    if local and (runs_root() / bare / "config.json").exists():
        return runs_root() / bare
    return None


def resolve_model(name: str, own_runs=(), local: bool = True) -> str | None:
    """The policy folder a short model name means (``example-ppo``, ``run:NAME``), else None."""
    if not isinstance(name, str) or not (name.startswith(RUN) or name.startswith(EXAMPLE)):
        return None
    run = find_run(name, own_runs, local)
    return str(run / "policy") if run is not None else None


def run_short(run) -> str:
    """A run folder's short name: ``example-ppo`` for a shipped example, else ``run:NAME``."""
    run = Path(run)
    return run.name if _key(run.parent) == _key(ASSETS) else RUN + run.name


def is_run_policy(path) -> bool:
    """``path`` is ``RUN/policy`` of a run folder (a config.json beside it)."""
    p = Path(str(path)).expanduser()
    return p.name == "policy" and (p.parent / "config.json").exists()


def model_short(name) -> str:
    """What a page names a model folder by: ``example-ppo`` / ``run:NAME`` for a run's policy, else the
    name as given (``default``, a Hub id, a typed folder)."""
    if not isinstance(name, str) or name in ("", DEFAULT_MODEL):
        return name or DEFAULT_MODEL
    try:
        if is_run_policy(name):
            return run_short(Path(name).expanduser().parent)
    except OSError:
        pass
    return name


def reward_short(run) -> str:
    """The reward-dropdown value of a reward-model run: ``rm:example-reward``, ``rm:run:NAME``."""
    return "rm:" + run_short(run)


def shown(name) -> str:
    """How a message names a model or a run: "example-ppo (shipped)", "your run NAME", the base model,
    a folder's own name for any other server folder; Hub ids as they are."""
    s = model_short(name) if isinstance(name, str) else str(name)
    if s == DEFAULT_MODEL:
        return "the base model ('default')"
    p = Path(s)
    if s.startswith(RUN):
        return f"your run {s[len(RUN) :]}"
    if example_run(s) is not None:
        return f"{s} (shipped)"
    if p.is_absolute() or s.startswith(("~", ".")) or ("/" in s and p.is_dir()):
        parent = p.parent
        if _key(parent) == _key(ASSETS):
            return f"{p.name} (shipped)"
        if (p / "config.json").exists() and (p / "metrics.jsonl").exists():
            return f"your run {p.name}"
        return f"folder {p.name!r}"
    return repr(s)
