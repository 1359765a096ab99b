"""GRPO's token inspector (issue 26): the G completions of one prompt at one optimizer step, each with its
reward, its group-relative advantage and its tokens, from the step's store (``tokens.py``). Pure reading:
no model is loaded.

For completion i of group g and its token t (β, ε of the run):

    A_i        = (r_i − mean_g) / (std_g + 10⁻⁴)   (scale_rewards "group"; "batch": the batch's std; "none": no division)
    ratio_i,t  = π/π_old = e^(logp − logp_old)    (1 when μ = 1)
    kl_i,t     = k3 = e^(logp_ref − logp) − (logp_ref − logp) − 1
    objective  = min(ratio·A, clip(ratio, 1 − ε, 1 + ε)·A) − β·ratio·k3   (the loss is its negative, averaged;
                 TRL 1.16's use_bias_correction_kl, on by default, weighs k3 by the ratio; off: − β·k3)
"""

from __future__ import annotations

import math
from pathlib import Path

from rlhf_demo.grpo.tokens import FLOATS, load_update, stored_steps
from rlhf_demo.inspector import check_index, number


def inspect(run_dir: Path, *, step: int | None, index: int | None) -> dict:
    """``{"algo": "grpo", "step", "episode", "beta", "cliprange", "scale_rewards", "group": {"prompt", "mean",
    "std", "completions": [{"text", "reward", "advantage", "tokens": [{"token", "token_id", "logp",
    "logp_old", "logp_ref", "kl", "ratio"}]}]}}`` plus ``batch_std``, ``num_generations``,
    ``num_iterations``, ``loss_type``, ``use_bias_correction_kl`` (the loss's KL term is β·ratio·k3), ``steps`` ([first, last] stored) and ``episodes`` (the step's
    number of groups). ``index`` (``--episode``) is the group, i.e. the prompt, from 0; ``logp_ref`` and
    ``kl`` are null when β = 0."""
    steps = stored_steps(run_dir)
    if not steps:
        raise ValueError(f"run {run_dir.name!r} has no per-token store (trained before the inspector kept one, or no step yet)")
    step = steps[-1] if step is None else step
    if step not in steps:
        raise ValueError(f"step {step} is out of range: this run's stored steps are {steps[0]}–{steps[-1]}")
    table = load_update(run_dir, step)
    G, groups = int(table["num_generations"]), len(table["prompt"])
    g = check_index(index, groups, "group")
    completions = []
    for i in range(g * G, (g + 1) * G):
        n = int(table["length"][i])
        rows = {name: table[name][i, :n].tolist() for name in FLOATS}
        tokens = [
            {
                "token": table["token"][i][t],
                "token_id": int(table["token_id"][i, t]),
                **{name: number(rows[name][t]) for name in FLOATS},
                "ratio": number(math.exp(rows["logp"][t] - rows["logp_old"][t])),
            }
            for t in range(n)
        ]
        completions.append(
            {
                "text": table["completion"][i],
                "reward": number(table["reward"][i]),
                "advantage": number(table["advantage"][i]),
                "tokens": tokens,
            }
        )
    return {
        "algo": "grpo",
        "step": step,
        "episode": g,
        "beta": table["beta"],
        "cliprange": table["cliprange"],
        "scale_rewards": table["scale_rewards"],
        "batch_std": number(table["batch_std"]),
        "num_generations": G,
        "num_iterations": table["num_iterations"],
        "loss_type": table["loss_type"],
        "use_bias_correction_kl": table["use_bias_correction_kl"],
        "steps": [steps[0], steps[-1]],
        "episodes": groups,
        "group": {
            "prompt": table["prompt"][g],
            "mean": number(table["mean"][g]),
            "std": number(table["std"][g]),
            "completions": completions,
        },
    }
