"""DPO's token inspector (issue 26): one preference pair under the run's saved policy, token by token.

For pair i of the run's training set (``RUN/pairs.jsonl``, TRL's dataset order), tokenised exactly as
TRL 1.16's ``DPOTrainer`` does for plain text (``trl/trainer/dpo_trainer.py``, ``tokenize_fn`` and
``DataCollatorForPreference``):

    chosen, rejected  +  EOS text (unless they end with it)
    prompt_ids        tokenizer(prompt), cut to its common prefix with tokenizer(prompt + chosen) and
                      tokenizer(prompt + rejected)
    side ids          the rest of tokenizer(prompt + side); prompt + side cut to max_length (keep_start)

and for each side token y_t (one forward of the policy and one of the reference, the adapter off or
the base model):

    implicit_reward_t = β · (log π(y_t | x, y<t) − log π_ref(y_t | x, y<t))
    reward            = Σ_t implicit_reward_t         (TRL's ``rewards/chosen`` / ``rewards/rejected``)
    margin            = reward_chosen − reward_rejected,   σ(margin): the loss is −log σ(margin)

What is simplified: values are the saved policy's (``RUN/policy``; after a KL stop, the policy it put
back). TRL does not keep per-step log-probabilities, so ``step`` other than the saved policy's is refused.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from rlhf_demo.dpo.pairs import load_run_pairs
from rlhf_demo.inspector import check_index, number


def common_prefix(a: list[int], b: list[int]) -> int:
    """Leading tokens ``a`` and ``b`` share (TRL's ``common_prefix_length``)."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def trl_pair_ids(tokenizer, row: dict, max_length: int | None) -> tuple[list[int], dict[str, list[int]]]:
    """(prompt_ids, {"chosen": ids, "rejected": ids}) as TRL 1.16's DPOTrainer scores a plain-text pair."""
    eos = tokenizer.eos_token
    sides = {k: row[k] if row[k].endswith(eos) else row[k] + eos for k in ("chosen", "rejected")}
    prompt_ids = tokenizer(text=row["prompt"])["input_ids"]
    full = {k: tokenizer(text=row["prompt"] + text)["input_ids"] for k, text in sides.items()}
    n = min(common_prefix(prompt_ids, ids) for ids in full.values())
    keep = None if max_length is None else max(0, max_length - n)  # the collator's keep_start cut
    return prompt_ids[:n], {k: ids[n:][:keep] for k, ids in full.items()}


@torch.no_grad()
def side_logprobs(model, prompt_ids: list[int], ids: list[int], device) -> torch.Tensor:
    """log π(y_t | x, y<t) of each of ``ids`` after ``prompt_ids``: one forward → [len(ids)]."""
    x = torch.tensor([prompt_ids + ids], device=device)  # [1, P + T]
    logits = model(input_ids=x, attention_mask=torch.ones_like(x), use_cache=False).logits.float()  # [1, P+T, V]
    P = len(prompt_ids)
    if P == 0 or not ids:
        raise ValueError("nothing to score: an empty prompt or side after TRL's tokenisation")
    logp = F.log_softmax(logits[0, P - 1 : -1], dim=-1)  # [T, V]: position t predicts token t + 1
    return logp.gather(1, x[0, P:].unsqueeze(1)).squeeze(1).cpu()


def pair_view(tokenizer, prompt_ids, side_ids: dict, logp: dict, logp_ref: dict, beta: float) -> dict:
    """The JSON of one pair from its per-token log-probabilities (pure)."""
    out, total = {}, {}
    for side, ids in side_ids.items():
        implicit = [beta * (p - r) for p, r in zip(logp[side].tolist(), logp_ref[side].tolist())]
        total[side] = sum(implicit)
        out[side] = {
            "text": tokenizer.decode(ids),
            "reward": number(total[side]),
            "tokens": [
                {
                    "token": tokenizer.decode([i]),
                    "token_id": i,
                    "logp_policy": number(p),
                    "logp_ref": number(r),
                    "implicit_reward": number(z),
                }
                for i, p, r, z in zip(ids, logp[side].tolist(), logp_ref[side].tolist(), implicit)
            ],
        }
    margin = total["chosen"] - total["rejected"]
    return {**out, "margin": number(margin), "sigmoid_margin": number(1 / (1 + math.exp(-margin)))}


_CACHE: dict = {}
"""The last run's loaded models (one entry: a policy and its reference, ~1 GB for the default model)."""


def load_models(run_dir: Path, config: dict):
    """(tokenizer, policy, reference context) of a run, kept for the next call on the same saved policy."""
    from rlhf_demo.models.loading import load_model

    policy_dir = run_dir / "policy"
    if not policy_dir.is_dir():
        raise ValueError(f"run {run_dir.name!r} has no saved policy yet (RUN/policy)")
    key = (str(policy_dir.resolve()), max(p.stat().st_mtime for p in policy_dir.iterdir()))
    if _CACHE.get("key") != key:
        _CACHE.clear()
        bundle = load_model(str(policy_dir), dtype=torch.float32, merge_adapter=False)
        ref = (
            None
            if hasattr(bundle.model, "disable_adapter")
            else load_model(config["model"], device=bundle.device, dtype=torch.float32).model
        )
        _CACHE.update(key=key, bundle=bundle, ref=ref)
    return _CACHE["bundle"], _CACHE["ref"]


def saved_step(run_dir: Path) -> int | None:
    """The step whose weights ``RUN/policy`` holds (the KL stop's restored step when it put one back)."""

    def read(path):
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    restored = read(run_dir / "summary.json").get("restored")
    if isinstance(restored, dict) and isinstance(restored.get("step"), int):
        return restored["step"]
    step = read(run_dir / "policy" / "checkpoint.json").get("step")
    return step if isinstance(step, int) else None


def inspect(run_dir: Path, *, step: int | None, index: int | None) -> dict:
    """``{"algo": "dpo", "step", "pair", "beta", "prompt", "prompt_ids", "chosen": {"text", "reward",
    "tokens": [{"token", "token_id", "logp_policy", "logp_ref", "implicit_reward"}]}, "rejected": {…},
    "margin"}`` plus ``sigmoid_margin`` and ``pairs`` (the training set's count)."""
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    pairs = load_run_pairs(run_dir)
    i = check_index(index, len(pairs), "pair")
    at = saved_step(run_dir)
    if step is not None and step != at:
        raise ValueError(
            f"DPO is inspected with the run's saved policy (step {at}): TRL keeps no per-step log-probabilities, so --step {step} is not available"
        )
    bundle, ref = load_models(run_dir, config)
    tok, model, beta = bundle.tokenizer, bundle.model, float(config["beta"])
    prompt_ids, side_ids = trl_pair_ids(tok, pairs[i], config.get("max_length"))
    logp = {k: side_logprobs(model, prompt_ids, ids, bundle.device) for k, ids in side_ids.items()}
    if ref is None:
        with model.disable_adapter():  # the reference: the base model
            logp_ref = {k: side_logprobs(model, prompt_ids, ids, bundle.device) for k, ids in side_ids.items()}
    else:
        logp_ref = {k: side_logprobs(ref, prompt_ids, ids, bundle.device) for k, ids in side_ids.items()}
    view = pair_view(tok, prompt_ids, side_ids, logp, logp_ref, beta)
    return {
        "algo": "dpo",
        "step": at,
        "pair": i,
        "beta": beta,
        "prompt": pairs[i]["prompt"],
        "prompt_ids": prompt_ids,
        **view,
        "pairs": len(pairs),
    }
