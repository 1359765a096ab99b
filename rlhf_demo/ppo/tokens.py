"""PPO's per-token store (issue 26): every term of an update's objective, token by token, kept for the
inspector (``rlhf_demo/inspector/ppo.py``).

For each update k the run folder holds ``RUN/tokens/step-000k.pt`` (``torch.save`` of plain tensors,
lists and numbers; read back with ``weights_only=True``). Per episode b and response position t,
float32 [B, R] unless said:

    token_id         the sampled token (int32)                          token    its text (list of lists)
    logprob_old      log π_old(y_t)          logprob_ref  log π_ref(y_t)
    kl               the per-token estimate the penalty used (``kl_estimator``: k1 = log π_old − log π_ref)
    reward           r_t = −β·kl_t (+ score on the last real token)     (``loss.compute_rewards``)
    value            V_old(s_t)              return       A_t + V_t     (``loss.gae``)
    advantage_raw    A_t of GAE, before whitening                       advantage  after whitening
    ratio            π/π_old as the last PPO epoch computed it          clipped    the clip was active (bool)
    length           real response tokens per episode [B] (positions past it are padding)
    score            the reward function's score [B]

and ``query``, ``response`` (texts), ``beta``, ``gamma``, ``lam``, ``cliprange``, ``kl_estimator``, and
``updated``: False for a batch that showed the previous update past the KL budget (that update was
undone and no update was made from this batch: ``ratio`` is NaN, the rest is what the update would
have used). Whether *this* update was undone is read from ``metrics.jsonl`` (``undone_steps``).

Size: the default preset's batch of 32 × 12 tokens is ~30 kB per update (~1 MB for 30 updates).
Under data parallelism only process 0 writes, so the store holds its share of the batch.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

FLOATS = ("logprob_old", "logprob_ref", "kl", "reward", "value", "return", "advantage_raw", "advantage", "ratio")
"""The float32 [B, R] fields, in the order the inspector lists them."""
FOLDER = "tokens"
_FILE = re.compile(r"step-(\d+)\.pt")


def token_table(
    *,
    token_ids: torch.Tensor,
    tokens: list[list[str]],
    mask: torch.Tensor,
    scores: torch.Tensor,
    queries: list[str],
    responses: list[str],
    terms: dict[str, torch.Tensor],
    scalars: dict,
    updated: bool = True,
) -> dict:
    """One update's store: ``terms`` (every ``FLOATS`` name → [B, R]; ``clipped`` → [B, R] bool) cut to
    float32 on the CPU, zero (False) past each episode's length. Pure: no I/O."""
    mask = mask.bool().cpu()  # [B, R]
    table = {name: (terms[name].detach().float().cpu() * mask).contiguous() for name in FLOATS if name != "ratio"}
    table["ratio"] = terms["ratio"].detach().float().cpu().masked_fill(~mask, 0.0)  # NaN stays NaN: no update
    table["clipped"] = terms["clipped"].detach().bool().cpu() & mask
    lengths = mask.sum(1).to(torch.int32)  # [B]
    return {
        **table,
        "token_id": token_ids.detach().to(torch.int32).cpu(),
        "token": [row[: int(n)] for row, n in zip(tokens, lengths.tolist())],
        "length": lengths,
        "score": scores.detach().float().cpu(),
        "query": list(queries),
        "response": list(responses),
        "updated": bool(updated),
        **{k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v) for k, v in scalars.items()},
    }


def step_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / FOLDER / f"step-{int(step):04d}.pt"


def save_update(run_dir: str | Path, step: int, table: dict) -> Path:
    """Write update ``step``'s store atomically (a temporary file, then a rename: a live reader never
    sees half a file)."""
    path = step_path(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(table, tmp)
    tmp.replace(path)
    return path


def stored_steps(run_dir: str | Path) -> list[int]:
    """The updates with a store, ascending (empty for a run from before the store)."""
    folder = Path(run_dir) / FOLDER
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _FILE.fullmatch(p.name)))


def load_update(run_dir: str | Path, step: int) -> dict:
    """Update ``step``'s store as ``token_table`` made it."""
    return torch.load(step_path(run_dir, step), map_location="cpu", weights_only=True)


def undone_steps(run_dir: str | Path) -> set[int]:
    """The updates the KL budget undid, from ``metrics.jsonl``: update k was undone when record k + 1
    rolled back (``kl_budget/rollback``) or record k's check did (``kl_budget/undone_at_check``)."""
    undone, path = set(), Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return undone
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        step = rec.get("step")
        if not isinstance(step, int):
            continue
        if rec.get("kl_budget/rollback"):
            undone.add(step - 1)
        if rec.get("kl_budget/undone_at_check"):
            undone.add(step)
    return undone
