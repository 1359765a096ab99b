"""Candidate responses for the π* panel: K responses sampled from the reference, scored by a reward.

For one prompt x we draw y_1 … y_K ~ π_ref(· | x) (special tokens banned, so every candidate has the
same length R), merge duplicates, and score each distinct candidate twice:

    logp_ref(y) = Σ_t log π_ref(y_t | x, y<t)     its sequence log-probability under π_ref, at T = 1
    reward(y)   = r(x + y)                        the same reward functions as training

These two columns are everything ``theory.optimal`` needs: over the set, π* ∝ π_ref · exp(r/β).

What is simplified: the set is a small sample, so π* here is the optimum *over these K answers*
(the renormalised reference q(y) stands in for π_ref); ``bench/ppo_frontier.py`` does the same with
128 samples per held-out prompt.

Memory: scoring holds the reference's logits for every position of the K candidates
(``costs.candidates_peak_bytes``), so the prompt is capped (``MAX_PROMPT_CHARS``, ``MAX_PROMPT_TOKENS``)
and, on a shared server, K × (prompt + 3 × tokens) by ``limits.Limits.max_request_bytes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pandas as pd
import torch

from rlhf_demo.classroom import costs
from rlhf_demo.config import KnobConfig, knob
from rlhf_demo.decoding.sampling import Batch, left_pad, make_generator, response_logits, sample_responses, token_logprobs
from rlhf_demo.rewards.functions import score_pairs
from rlhf_demo.theory.optimal import TheoryInputError

MAX_CANDIDATES = 32
"""Most candidate responses K sampled from the reference."""
MAX_CANDIDATE_TOKENS = 32
"""Longest candidate, in tokens."""
MAX_PROMPT_CHARS = 2000
MAX_PROMPT_TOKENS = 512
"""Longest prompt (a shared server takes fewer: ``limits.Limits.max_prompt_tokens``)."""


@dataclass
class CandidatesConfig(KnobConfig):
    """How the K candidate responses are drawn from the reference; its messages name a knob as the
    Theory tab's widget does."""

    NAME: ClassVar[str] = "candidates"
    ERROR: ClassVar[type[ValueError]] = TheoryInputError
    SAY: ClassVar[str] = "label"

    k: int = knob(
        8, "Candidates sampled from π_ref (duplicates are merged).", kind="int", lo=2, hi=MAX_CANDIDATES, label="Number of candidates K"
    )
    response_tokens: int = knob(
        12,
        "Tokens per candidate (special tokens are banned, so all have this length).",
        kind="int",
        lo=1,
        hi=MAX_CANDIDATE_TOKENS,
        label="Candidate length (tokens)",
    )
    temperature: float = knob(
        1.0,
        "Sampling temperature (the probabilities shown are always π_ref's own, at T = 1).",
        kind="float",
        lo=1e-3,
        hi=100.0,
        label="Sampling temperature",
    )
    seed: int = knob(0, "Seed of the sampler: same seed, same candidates.", kind="int", lo=0, label="Seed")
    reward: str = knob(
        "vader-positive", "Reward function, as in training (rewards/functions.py): scores prompt + response.", kind="str", label="Reward"
    )


def distinct_rows(ids: list[list[int]]) -> list[int]:
    """Indices of the first occurrence of each distinct row, in order (duplicates merged)."""
    seen, keep = set(), []
    for i, row in enumerate(ids):
        if tuple(row) not in seen:
            seen.add(tuple(row))
            keep.append(i)
    return keep


def _check_prompt(reference, prompt: str, cfg: CandidatesConfig) -> list[int]:
    if not isinstance(prompt, str) or not prompt.strip():
        raise TheoryInputError("the prompt is empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise TheoryInputError(f"the prompt is {len(prompt)} characters long; the limit is {MAX_PROMPT_CHARS}")
    q = reference.tokenizer(prompt, add_special_tokens=False).input_ids
    if len(q) > MAX_PROMPT_TOKENS:
        raise TheoryInputError(f"the prompt has {len(q)} tokens; the limit is {MAX_PROMPT_TOKENS}")
    costs.check_prompt_tokens(len(q))
    costs.check_request(
        costs.candidates_peak_bytes(cfg.k, len(q), cfg.response_tokens),
        f"{cfg.k} candidates",
        "lower K, the tokens per candidate, or shorten the prompt",
    )
    return q


@torch.no_grad()
def sample_candidates(reference, prompt: str, reward_fn, cfg: CandidatesConfig | None = None) -> pd.DataFrame:
    """K responses sampled from the reference (a ModelBundle), deduplicated, with their sequence
    log-probability under π_ref and their reward. Columns: response, logp_ref, reward, n_tokens."""
    return sample_candidates_batch(reference, prompt, reward_fn, [cfg or CandidatesConfig()])[0]


@torch.no_grad()
def sample_candidates_batch(reference, prompt: str, reward_fn, cfgs: list[CandidatesConfig]) -> list[pd.DataFrame]:
    """:func:`sample_candidates` for several requests with the same prompt, reward, candidate length and
    temperature (K and seed may differ), as ONE sampling pass and ONE scoring pass over all their rows
    (the Theory tab batches students' clicks this way: ``shared_work.py``). Each request's K rows draw
    from one generator seeded with its seed, as alone, so it gets the candidates it gets alone."""
    cfgs = [c.validate() for c in cfgs]
    first = cfgs[0]
    if any((c.response_tokens, c.temperature) != (first.response_tokens, first.temperature) for c in cfgs):
        raise TheoryInputError("requests batched together need the same candidate length and temperature")
    q = _check_prompt(reference, prompt, max(cfgs, key=lambda c: c.k))
    tok = reference.tokenizer
    generators = [g for c in cfgs for g in [make_generator(c.seed, reference.device)] * c.k]  # one stream per request
    batch = sample_responses(
        reference.model, tok, [q] * len(generators), first.response_tokens, temperature=first.temperature, generator=generators
    )  # [ΣK, Q + R]
    rows, spans, start = batch.response_ids.tolist(), [], 0
    keep = []  # Σ K' row indices
    for c in cfgs:
        mine = [start + i for i in distinct_rows(rows[start : start + c.k])]  # duplicates merged per request
        spans.append(slice(len(keep), len(keep) + len(mine)))
        keep += mine
        start += c.k
    ids, mask = left_pad([q + rows[i] for i in keep], tok.pad_token_id, reference.device)
    uniq = Batch(ids, mask, len(q), torch.ones((len(keep), batch.response_ids.shape[1]), dtype=torch.long, device=reference.device))
    logits = response_logits(reference.model, uniq)  # [ΣK', R, V]
    logp_ref = token_logprobs(logits, uniq.response_ids).double().sum(-1).cpu()  # [ΣK']
    texts = [tok.decode(r, skip_special_tokens=True) for r in uniq.response_ids.tolist()]
    rewards = [float(x) for x in score_pairs(reward_fn, [prompt] * len(texts), texts)]
    return [
        pd.DataFrame({"response": texts[s], "logp_ref": logp_ref[s].numpy(), "reward": rewards[s], "n_tokens": uniq.response_ids.shape[1]})
        for s in spans
    ]
