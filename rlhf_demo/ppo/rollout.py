"""Steps 1–4 of a PPO update: sample responses, score them, and compare with the reference.

    1. the policy samples one response per query (``decoding.sampling.sample_responses``); in
       float32 the generation forward already gives π_old's full distribution and the value head's
       input, so old log-probs and values need no second forward. In bfloat16 the cached, one token
       at a time decoding rounds differently from a forward over the whole text (log-probs apart by
       ~0.01–0.1, which would read as KL before any update), so π_old and V_old come from the same
       forward that the PPO epochs and the reference run (``time/old_policy``)
    2. the reward function scores query + response (its raw outputs are kept for display, and a
       builder spec's components each scores what it is about: ``rewards.functions.score_pairs``
       hands it the responses too); the gold reward, when set, scores the same texts (logged, never
       trained on)
    3. the reference (adapter off, or the frozen copy) scores the same tokens; with both full
       distributions at hand, the exact KL(π_old‖π_ref) per position comes for free:

           exact_t = Σ_v π_old(v | x, y<t) · (log π_old(v | ·) − log π_ref(v | ·))

With ``trunk_layer`` (LoRA on the top layers only) the reference runs only those layers, on the
hidden states the generation kept at their entrance (``trunk.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from rlhf_demo.decoding.sampling import Batch, decode_queries, decode_responses, sample_responses
from rlhf_demo.kl.estimators import exact_kl, masked_mean
from rlhf_demo.ppo.forward import ValueHead, forward_response, pick
from rlhf_demo.ppo.loss import entropy_from_logprobs
from rlhf_demo.rewards.functions import score_pairs


@dataclass
class Rollout:
    batch: Batch
    queries: list[str]
    responses: list[str]
    scores: torch.Tensor  # [B]
    gold_scores: torch.Tensor | None  # [B] the gold reward on the same texts, or None
    details: list  # the reward function's raw outputs, one per episode
    logprobs: torch.Tensor  # [B, R] log π_old of the sampled tokens
    ref_logprobs: torch.Tensor  # [B, R] log π_ref of the sampled tokens
    values: torch.Tensor  # [B, R] V_old
    exact_kl: torch.Tensor  # [B, R] exact KL(π_old‖π_ref) per response position
    entropy: float  # mean over response tokens of −Σ_v π_old(v)·log π_old(v)
    timings: dict
    components: list[dict] = field(default_factory=list)  # per episode {component name: score} (a RewardFunction's)


@torch.no_grad()
def rollout(
    policy,
    value_head: ValueHead,
    tokenizer,
    queries: list[list[int]],
    response_tokens: int,
    reward_fn,
    *,
    seed: int,
    ban_special_tokens: bool = True,
    trunk_layer: int | None = None,
    gold_fn=None,
) -> Rollout:
    """Sample, score and compare one batch. ``policy`` is a ``models.lora.TrainablePolicy``; ``gold_fn``
    (optional) scores the same texts as ``reward_fn`` (the training reward itself is not called twice)."""
    model = policy.model
    model.eval()
    t0 = time.perf_counter()
    batch = sample_responses(
        model,
        tokenizer,
        queries,
        response_tokens,
        seed=seed,  # 1. sample
        ban_special_tokens=ban_special_tokens,
        keep_outputs=True,
        trunk_layer=trunk_layer,
    )
    resp_ids = batch.response_ids  # [B, R]
    t_gen = time.perf_counter()
    if batch.last_hidden.dtype == torch.float32:  # the precision decoding ran in
        logp_all = F.log_softmax(batch.logits, dim=-1)  # [B, R, V] log π_old
        values = value_head(batch.last_hidden)  # [B, R]
    else:  # bf16: score as the epochs will
        old_logits, values = forward_response(model, batch, value_head, trunk_layer=trunk_layer)
        logp_all = F.log_softmax(old_logits, dim=-1)
        del old_logits
    logprobs = pick(logp_all, resp_ids)  # [B, R]
    batch.logits = batch.last_hidden = None  # free memory
    t1 = time.perf_counter()
    q_txt, r_txt = decode_queries(tokenizer, batch), decode_responses(tokenizer, batch)
    scores = score_pairs(reward_fn, q_txt, r_txt)  # 2. score query + response (components: what each is about)
    details = list(getattr(reward_fn, "last_details", []) or [])
    per = getattr(reward_fn, "last_components", None) or {}  # name → [B]
    components = [{name: float(v[i]) for name, v in per.items()} for i in range(len(q_txt))] if per else []
    gold = None if gold_fn is None else scores if gold_fn is reward_fn else score_pairs(gold_fn, q_txt, r_txt)
    t2 = time.perf_counter()
    with policy.reference() as ref:  # 3. reference
        ref_logits, _ = forward_response(ref, batch, trunk_layer=trunk_layer)
        ref_all = F.log_softmax(ref_logits, dim=-1)  # [B, R, V]
        ref_logprobs = pick(ref_all, resp_ids)  # [B, R]
        exact = exact_kl(logp_all, ref_all)  # [B, R]
        entropy = float(masked_mean(entropy_from_logprobs(logp_all), batch.response_mask.float()))
        del ref_logits, ref_all, logp_all
    t3 = time.perf_counter()
    timings = {"time/generate": t_gen - t0, "time/old_policy": t1 - t_gen, "time/score": t2 - t1, "time/reference": t3 - t2}
    scores_t = torch.tensor([float(s) for s in scores], dtype=torch.float32, device=logprobs.device)
    gold_t = None if gold is None else torch.tensor([float(s) for s in gold], dtype=torch.float32)
    return Rollout(
        batch,
        q_txt,
        r_txt,
        scores_t,
        gold_t,
        details,
        logprobs.float(),
        ref_logprobs.float(),
        values.float(),
        exact.float(),
        entropy,
        timings,
        components,
    )


def episode_rows(ro: Rollout, k1_per_seq: torch.Tensor) -> list[dict]:
    """The batch as rows for tables and samples.jsonl: query, response, reward, k1 KL, raw reward output,
    each reward component's score (``components``, name → score; a single reward: its own) and the gold
    reward when one is set."""
    details = ro.details if len(ro.details) == len(ro.queries) else [None] * len(ro.queries)
    rows = [
        {"query": q, "response": r, "reward": float(s), "kl": float(k), "details": d}
        for q, r, s, k, d in zip(ro.queries, ro.responses, ro.scores.tolist(), k1_per_seq.tolist(), details)
    ]
    if len(ro.components) == len(rows):
        for row, c in zip(rows, ro.components):
            row["components"] = c
    if ro.gold_scores is not None:
        for row, g in zip(rows, ro.gold_scores.tolist()):
            row["gold_reward"] = g
    return rows
