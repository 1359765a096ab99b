"""PPO's token inspector (issue 26): one episode of one update, every term of its objective per token,
from the update's store (``tokens.py``). Pure reading: no model is loaded.

For token t of the episode (β, γ, λ, ε of the update):

    kl_t          the estimate the penalty used (k1: log π_old − log π_ref)
    reward_t      −β·kl_t, + score on the last token
    advantage_raw A_t = δ_t + γλ·A_{t+1},  δ_t = reward_t + γ·V_{t+1} − V_t   (V past the end = 0)
    return_t      A_t + V_t
    advantage     A_t whitened over the batch: what the clipped objective used
    ratio_t       π/π_old as the last PPO epoch computed it; clipped: min(ratio·A, clip(ratio, 1 ± ε)·A)
                  took the clipped branch (the token's gradient was zero)
"""

from __future__ import annotations

from pathlib import Path

from rlhf_demo.inspector import check_index, number
from rlhf_demo.ppo.tokens import FLOATS, load_update, stored_steps, undone_steps


def inspect(run_dir: Path, *, step: int | None, index: int | None) -> dict:
    """``{"algo": "ppo", "step", "episode", "undone", "query", "response", "score", "beta", "gamma",
    "lam", "cliprange", "tokens": [{"token", "token_id", "logprob_old", "logprob_ref", "kl", "reward",
    "value", "return", "advantage_raw", "advantage", "ratio", "clipped"}]}`` plus ``updated`` (False: this
    batch undid the previous update and trained nothing; ratio null), ``kl_estimator``, ``steps``
    ([first, last] stored) and ``episodes`` (the batch's count)."""
    steps = stored_steps(run_dir)
    if not steps:
        raise ValueError(f"run {run_dir.name!r} has no per-token store (trained before the inspector kept one, or no update yet)")
    step = steps[-1] if step is None else step
    if step not in steps:
        raise ValueError(f"step {step} is out of range: this run's stored updates are {steps[0]}–{steps[-1]}")
    table = load_update(run_dir, step)
    episodes = len(table["query"])
    b = check_index(index, episodes, "episode")
    n = int(table["length"][b])
    rows = {name: table[name][b, :n].tolist() for name in FLOATS}
    tokens = [
        {
            "token": table["token"][b][t],
            "token_id": int(table["token_id"][b, t]),
            **{name: number(rows[name][t]) for name in FLOATS},
            "clipped": bool(table["clipped"][b, t]) if table["updated"] else None,
        }
        for t in range(n)
    ]
    return {
        "algo": "ppo",
        "step": step,
        "episode": b,
        "undone": step in undone_steps(run_dir),
        "updated": bool(table["updated"]),
        "query": table["query"][b],
        "response": table["response"][b],
        "score": number(table["score"][b]),
        "beta": table["beta"],
        "gamma": table["gamma"],
        "lam": table["lam"],
        "cliprange": table["cliprange"],
        "kl_estimator": table["kl_estimator"],
        "steps": [steps[0], steps[-1]],
        "episodes": episodes,
        "tokens": tokens,
    }
