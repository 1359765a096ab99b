"""DPO's token inspector (issue 26): one preference pair, token by token, either as a training step's
loss saw it (live, from the per-step store) or under the run's saved policy.

For each token y_t of a pair's chosen and rejected completions:

    implicit_reward_t = β · (log π(y_t | x, y<t) − log π_ref(y_t | x, y<t))
    reward            = Σ_t implicit_reward_t         (TRL's ``rewards/chosen`` / ``rewards/rejected``)
    margin            = reward_chosen − reward_rejected,   σ(margin): the loss is −log σ(margin)

Which π, and which pair ``index`` means:

- ``step=K`` (a step the run kept, ``RUN/tokens/step-000K.pt``, ``tokens.py``): the values TRL's loss
  computed at step K (the policy before that step's update, as ``metrics.jsonl``'s record K logs
  them; no model is loaded), for pair ``index`` **of step K's batch** (0 … B − 1). The JSON's ``pair``
  is that pair's index in the training set, ``batch_pair`` the index in the batch, ``batch`` the
  training-set indices of the whole batch; ``source`` is "step".
- ``step=None``: once the run has ended (``summary.json``), the saved policy (``RUN/policy``; after a KL
  stop, the policy it put back), for pair ``index`` **of the training set** (``RUN/pairs.jsonl``);
  ``step`` is the saved policy's step and ``source`` "saved policy". While the run still trains (no
  summary yet) and has kept a step, the last step kept, as with ``step=K``.

With the saved policy, the pair is tokenised exactly as TRL 1.16's ``DPOTrainer`` does for plain text
(``trl/trainer/dpo_trainer.py``, ``tokenize_fn`` and ``DataCollatorForPreference``):

    chosen, rejected  +  EOS text (unless they end with it)
    prompt_ids        tokenizer(prompt), cut to its common prefix with tokenizer(prompt + chosen) and
                      tokenizer(prompt + rejected)
    side ids          the rest of tokenizer(prompt + side); prompt + side cut to max_length (keep_start)

and scored with one forward of the policy and one of the reference. The models come from ``load(name,
what)`` (the caller's: the app passes its model registry, so they count against its memory budget and
are evicted like any other; default :func:`plain_load`): the policy as ``RUN/policy`` and, unless that
is a LoRA adapter whose switched-off base is the reference, the reference as the run's ``model``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from rlhf_demo.dpo.pairs import load_run_pairs
from rlhf_demo.dpo.tokens import SIDES, load_update, stored_steps
from rlhf_demo.inspector import check_index, number

Loader = Callable[[str, str], object]
"""``load(name, what) -> ModelBundle``: ``name`` a model folder or name, ``what`` what it is for
("the run's policy", "the reference model"), for a progress line."""


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


def pair_view(side_ids: dict, tokens: dict, texts: dict, logp: dict, logp_ref: dict, beta: float) -> dict:
    """The JSON of one pair's sides from their ids, token texts, completion texts and per-token
    log-probabilities (lists or tensors), with the margin and σ(margin). Pure."""
    out, total = {}, {}
    for side, ids in side_ids.items():
        pol, ref = [float(x) for x in logp[side]], [float(x) for x in logp_ref[side]]
        implicit = [beta * (p - r) for p, r in zip(pol, ref)]
        total[side] = sum(implicit)
        out[side] = {
            "text": texts[side],
            "reward": number(total[side]),
            "tokens": [
                {"token": t, "token_id": i, "logp_policy": number(p), "logp_ref": number(r), "implicit_reward": number(z)}
                for t, i, p, r, z in zip(tokens[side], ids, pol, ref, implicit)
            ],
        }
    margin = total["chosen"] - total["rejected"]
    sigmoid = math.nan if not math.isfinite(margin) else 1 / (1 + math.exp(-margin)) if margin >= 0 else 1 - 1 / (1 + math.exp(margin))
    return {**out, "margin": number(margin), "sigmoid_margin": number(sigmoid)}


def plain_load(name: str, what: str = "model"):
    """The command line's loader: a plain float32 load (a LoRA adapter kept unmerged, so switching it
    off gives the reference without a second copy)."""
    from rlhf_demo.models.loading import load_model

    return load_model(name, dtype=torch.float32, merge_adapter=False)


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def saved_step(run_dir: Path) -> int | None:
    """The step whose weights ``RUN/policy`` holds (the KL stop's restored step when it put one back)."""
    restored = _read(run_dir / "summary.json").get("restored")
    if isinstance(restored, dict) and isinstance(restored.get("step"), int):
        return restored["step"]
    step = _read(run_dir / "policy" / "checkpoint.json").get("step")
    return step if isinstance(step, int) else None


def from_step(run_dir: Path, step: int, index: int | None, pairs: list[dict], steps: list[int]) -> dict:
    """Pair ``index`` of step ``step``'s batch as that step's loss saw it (the store; no model)."""
    table = load_update(run_dir, step)
    batch = table["pair"].tolist()
    b = index or 0
    if not 0 <= b < len(batch):
        raise ValueError(
            f"pair {b} is out of range: step {step}'s batch has pairs 0–{len(batch) - 1} (with a step, the pair indexes its batch)"
        )
    i = batch[b]
    side_ids = {s: table[s]["ids"][b] for s in SIDES}
    cut = {s: slice(0, len(side_ids[s])) for s in SIDES}
    view = pair_view(
        side_ids,
        {s: table[s]["token"][b] for s in SIDES},
        {s: table[s]["text"][b] for s in SIDES},
        {s: table[s]["logp_policy"][b, cut[s]] for s in SIDES},
        {s: table[s]["logp_ref"][b, cut[s]] for s in SIDES},
        table["beta"],
    )
    return {
        "algo": "dpo",
        "step": step,
        "pair": i if i >= 0 else None,
        "batch_pair": b,
        "batch": batch,
        "source": "step",
        "beta": table["beta"],
        "prompt": pairs[i]["prompt"] if 0 <= i < len(pairs) else None,
        "prompt_ids": table["prompt_ids"][b],
        **view,
        "pairs": len(pairs),
        "steps": [steps[0], steps[-1]],
        "reference": table["ref"],
    }


def from_policy(run_dir: Path, index: int | None, pairs: list[dict], load: Loader, steps: list[int]) -> dict:
    """Pair ``index`` of the training set under the saved policy (one forward of it and one of the reference)."""
    config = _read(run_dir / "config.json")
    i = check_index(index, len(pairs), "pair")
    policy_dir = run_dir / "policy"
    if not policy_dir.is_dir():
        raise ValueError(f"run {run_dir.name!r} has no saved policy yet (RUN/policy)")
    bundle = load(str(policy_dir), "the run's policy")
    tok, model, beta = bundle.tokenizer, bundle.model, float(config["beta"])
    prompt_ids, side_ids = trl_pair_ids(tok, pairs[i], config.get("max_length"))
    logp = {k: side_logprobs(model, prompt_ids, ids, bundle.device) for k, ids in side_ids.items()}
    if hasattr(model, "disable_adapter"):
        with model.disable_adapter():  # the reference: the base model under the adapter
            logp_ref = {k: side_logprobs(model, prompt_ids, ids, bundle.device) for k, ids in side_ids.items()}
    else:
        ref = load(config["model"], "the reference model")
        logp_ref = {k: side_logprobs(ref.model, prompt_ids, ids, ref.device) for k, ids in side_ids.items()}
    tokens = {k: tok.batch_decode([[t] for t in ids]) for k, ids in side_ids.items()}
    texts = {k: tok.decode(ids) for k, ids in side_ids.items()}
    return {
        "algo": "dpo",
        "step": saved_step(run_dir),
        "pair": i,
        "source": "saved policy",
        "beta": beta,
        "prompt": pairs[i]["prompt"],
        "prompt_ids": prompt_ids,
        **pair_view(side_ids, tokens, texts, logp, logp_ref, beta),
        "pairs": len(pairs),
        **({"steps": [steps[0], steps[-1]]} if steps else {}),
    }


def inspect(run_dir: Path, *, step: int | None, index: int | None, load: Loader | None = None) -> dict:
    """``{"algo": "dpo", "step", "pair", "beta", "prompt", "prompt_ids", "chosen": {"text", "reward",
    "tokens": [{"token", "token_id", "logp_policy", "logp_ref", "implicit_reward"}]}, "rejected": {…},
    "margin"}`` plus ``sigmoid_margin``, ``source`` ("step" / "saved policy"), ``pairs`` (the training
    set's count) and ``steps`` ([first, last] kept); from a step also ``batch_pair``, ``batch`` and
    ``reference`` (see the module's docstring for ``step`` and ``index``)."""
    pairs = load_run_pairs(run_dir)
    steps = stored_steps(run_dir)
    ended = (run_dir / "summary.json").is_file()
    if step is None and steps and not ended:  # a run still training: its last step
        step = steps[-1]
    if step is None or (step not in steps and step == saved_step(run_dir)):
        if step is None and not ended and not (run_dir / "policy").is_dir():
            raise ValueError(f"run {run_dir.name!r} has not finished a step yet: its tokens appear after the first one")
        return from_policy(run_dir, index, pairs, load or plain_load, steps)
    if step not in steps:
        kept = f"its kept steps are {steps[0]}–{steps[-1]}" if steps else "it kept no per-step values (trained before DPO runs kept them)"
        raise ValueError(f"step {step} is out of range: {kept}; without a step, its saved policy (step {saved_step(run_dir)})")
    return from_step(run_dir, step, index, pairs, steps)
