"""The token inspector (issue 26): why did this token go up? One entry for every algorithm.

``inspect_run(RUN, step=K, episode=I | pair=I)`` reads the run's ``config.json``, asks the registry
(``algorithms.Algorithm.inspector``) for its algorithm's inspector and returns that one's JSON-ready
dict: PPO, one episode of update K, token by token (``ppo/inspect.py``); DPO, one preference pair as
step K's loss saw it or under the saved policy (``dpo/inspect.py``); GRPO, the G completions of one prompt (``grpo/inspect.py``).
The CLI (``cli/inspect.py``), the named API (``ui/api_inspect.py``) and the UI are faces over it.
Steps count from 1 as in ``metrics.jsonl``; episodes, pairs and groups from 0. Errors a user can fix
are one-line ``ValueError``s. Imports neither torch nor gradio (the inspectors import what they need).
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable
from pathlib import Path

from rlhf_demo.algorithms import find, resolve


def inspect_run(
    run_dir: str | Path,
    *,
    step: int | None = None,
    episode: int | None = None,
    pair: int | None = None,
    load: Callable | None = None,
) -> dict:
    """The inspector's dict for run ``run_dir`` (``step``: None = the last update or the saved policy;
    ``episode`` / ``pair``: which one, None = 0). ``load(name, what) -> ModelBundle``: where an
    inspector that needs a model gets it (the app: its model registry, so the model counts against the
    app's memory; None: the inspector's own plain load, as on the command line); an inspector takes it
    when its signature has ``load``."""
    run = Path(run_dir)
    try:
        config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ValueError(f"{run.name!r} is not a run folder (no readable config.json)") from None
    alg = find(config.get("algo"))
    if alg is None or not alg.inspector:
        raise ValueError(f"run {run.name!r}: {str(config.get('algo'))[:20]!r} runs have no token inspector")
    if episode is not None and pair is not None:
        raise ValueError("give an episode or a pair, not both")
    for name, value in (("step", step), ("episode", episode), ("pair", pair)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{name} must be a whole number; got {str(value)[:20]!r}")
    fn = resolve(alg.inspector)
    extra = {"load": load} if load is not None and "load" in inspect.signature(fn).parameters else {}
    return fn(run, step=step, index=episode if episode is not None else pair, **extra)


def check_index(index: int | None, count: int, what: str) -> int:
    """``index`` (None = 0) within ``range(count)``; ValueError naming the range otherwise."""
    index = 0 if index is None else index
    if not 0 <= index < count:
        raise ValueError(f"{what} {index} is out of range: this one has {what}s 0–{count - 1}")
    return index


def number(x: float, digits: int = 6) -> float | None:
    """A finite float rounded for JSON; NaN and ±inf become None (strict JSON has no NaN)."""
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None
