"""``python -m rlhf_demo inspect RUN [--step K] [--episode I | --pair I] [--json]``: why did this token
go up? A run's objective token by token (``rlhf_demo/inspector.py``): PPO, one episode of update K;
DPO, one preference pair under the saved policy; GRPO, the completions of one prompt.

RUN is a run folder or a run name as ``runs`` lists it (``example-ppo``, ``run:NAME``, ``NAME`` under
``$RLHF_DEMO_RUNS``). Without ``--json``, the scalars then a table per token list."""

from __future__ import annotations

import json
from pathlib import Path

HELP = "Show a run's objective token by token: PPO episode, DPO pair or GRPO group (--json: the API's JSON)."


def add_arguments(p):
    p.add_argument("run", metavar="RUN", help="a run folder, or a run name as `python -m rlhf_demo runs` lists it")
    p.add_argument(
        "--step", type=int, default=None, help="update/step, from 1 as in metrics.jsonl (default: the last; DPO: the saved policy)"
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--episode", type=int, default=None, help="PPO episode of the batch (GRPO: the prompt's group), from 0")
    which.add_argument(
        "--pair",
        type=int,
        default=None,
        help="DPO preference pair, from 0: of the run's training set (its saved policy); with --step, of that step's batch",
    )
    p.add_argument("--json", action="store_true", help="one JSON object (the named API's /inspect output)")


def find_run_dir(run: str) -> Path:
    """A folder with a config.json, else a run name (``runs/names.py``); ValueError in one line."""
    from rlhf_demo.runs.names import find_run

    path = Path(run).expanduser()
    if (path / "config.json").is_file():
        return path
    found = find_run(run)
    if found is None:
        raise ValueError(f"no run {run[:80]!r}: give a run folder or a name that `python -m rlhf_demo runs` lists")
    return found


def _cell(v) -> str:
    if isinstance(v, bool) or v is None:
        return {True: "yes", False: "", None: "-"}[v]
    if isinstance(v, float):
        return f"{v:+.4f}"
    return repr(v)[1:-1] if isinstance(v, str) else str(v)


def table(rows: list[dict], indent: str = "") -> list[str]:
    """Rows of one token list as aligned text columns (a row number first)."""
    if not rows:
        return [indent + "(no tokens)"]
    cols = ["#", *rows[0]]
    cells = [[str(i), *(_cell(r.get(c)) for c in cols[1:])] for i, r in enumerate(rows)]
    widths = [max(len(c), *(len(row[j]) for row in cells)) for j, c in enumerate(cols)]
    fmt = lambda row: indent + "  ".join(x.ljust(w) if j in (1,) else x.rjust(w) for j, (x, w) in enumerate(zip(row, widths)))  # noqa: E731
    return [fmt(cols), *(fmt(r) for r in cells)]


def render(view: dict, indent: str = "") -> list[str]:
    """The scalars of ``view`` as ``key: value`` lines, then each nested part: a token list as a table,
    a dict (a DPO side) or a list of dicts (GRPO's group) the same way, indented."""
    lines, nested = [], []
    for k, v in view.items():
        if isinstance(v, dict) or (isinstance(v, list) and v and isinstance(v[0], dict)):
            nested.append((k, v))
        elif isinstance(v, list) and len(v) > 12:
            lines.append(f"{indent}{k}: [{', '.join(map(str, v[:12]))}, … {len(v)} in all]")
        else:
            lines.append(f"{indent}{k}: {_cell(v) if not isinstance(v, list) else v}")
    for k, v in nested:
        lines.append(f"{indent}{k}:")
        if isinstance(v, dict):
            lines += render(v, indent + "  ")
        elif k == "tokens":
            lines += table(v, indent + "  ")
        else:
            for i, item in enumerate(v):
                lines.append(f"{indent}  [{i}]")
                lines += render(item, indent + "    ")
    return lines


def run(args) -> int:
    from rlhf_demo.inspector import inspect_run

    view = inspect_run(find_run_dir(args.run), step=args.step, episode=args.episode, pair=args.pair)
    print(json.dumps(view, ensure_ascii=False) if args.json else "\n".join(render(view)))
    return 0
