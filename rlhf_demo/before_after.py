"""Before / after: the same fixed held-out queries answered by the reference and by the trained
policy, with the same seed, scored by the same reward. Shared by every trainer."""

from __future__ import annotations

import torch

from rlhf_demo.data.prompts import builtin_prompts, truncate_prompt
from rlhf_demo.decoding.sampling import decode_queries, decode_responses, sample_responses
from rlhf_demo.rewards.functions import score_pairs

QUERIES = 6
"""Held-out openings answered (the first six of the held-out split)."""
QUERY_TOKENS = 6
SEED = 4321


@torch.no_grad()
def before_after(policy, reward_fn, response_tokens: int = 12, n: int = QUERIES) -> list[dict]:
    """Rows {query, reference, reference_reward, policy, policy_reward}; ``policy`` is a
    ``models.lora.TrainablePolicy`` (its ``reference()`` answers "before")."""
    tok = policy.tokenizer
    queries = [truncate_prompt(tok, p, QUERY_TOKENS) for p in builtin_prompts("heldout")[:n]]
    was_training = policy.model.training
    policy.model.eval()
    try:
        with policy.reference() as ref:
            before = decode_responses(tok, sample_responses(ref, tok, queries, response_tokens, seed=SEED))
        after_batch = sample_responses(policy.model, tok, queries, response_tokens, seed=SEED)
    finally:
        policy.model.train(was_training)
    q_txt, after = decode_queries(tok, after_batch), decode_responses(tok, after_batch)
    rb, ra = score_pairs(reward_fn, q_txt, before), score_pairs(reward_fn, q_txt, after)
    return [
        {"query": q, "reference": b, "reference_reward": float(x), "policy": a, "policy_reward": float(y)}
        for q, b, x, a, y in zip(q_txt, before, rb, after, ra)
    ]
