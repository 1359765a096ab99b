"""Reward components that judge the *response* (the builder's ``on-topic``, ``repetition``, ``fluency`` and
``relevance``).

Sentiment rewards score query + response, as the course does; these are about what the policy
wrote, so they score the response (``target = "response"``): a rollout that passes the responses
(``functions.score_pairs``) gives them exactly that. Called with whole texts only, they score the whole
text (the openings mostly name the film already, so ``on-topic`` then says little).

- ``on-topic`` = 1 when the response names something of a film, else 0: the judgement of
  ``evaluate.on_topic`` (a word beginning with one of ``evaluate.FILM_WORDS``), the one the held-out
  evaluation's ``eval/on_topic`` share is made of.
- ``repetition`` = 1 − distinct-2 of the response (see :func:`repetition`): 0 for text that never
  repeats a word pair, towards 1 for collapsed text ("love love love ...").
- ``fluency`` = the reference (base) model's mean log-probability per response token given the query
  (:func:`mean_logprob`): natural text scores near −2…−3, fluent-looking word salad far lower. It reads
  the query as well, so it takes the responses and splits each text (``score_episodes``).
- ``relevance`` = how much more likely the reference model finds the response after *its own* opening
  than with no opening at all, per token (:class:`RelevanceReward`, the pointwise mutual information of
  opening and answer): about +1 nat for a natural continuation, ≤ 0 for an answer that would fit any
  opening (the same template after every query, or an answer shuffled onto another opening).

They are meant as terms of a builder spec: ``0.7*vader-positive + 0.3*on-topic - 0.5*repetition``.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from rlhf_demo.rewards.functions import RewardFunction


def repetition(text: str) -> float:
    """Share of the response's word bigrams that repeat an earlier one:

        repetition(y) = 1 − |distinct bigrams of y| / |bigrams of y|  = 1 − distinct-2(y)

    with words split on whitespace, as ``evaluate.distinct_n`` does (so on one text it is
    1 − ``distinct_n([y], 2)``); 0 when ``y`` has fewer than two words (nothing can repeat)."""
    words = text.split()
    bigrams = list(zip(words, words[1:]))
    return 1.0 - len(set(bigrams)) / len(bigrams) if bigrams else 0.0


class OnTopicReward(RewardFunction):
    """``on-topic``: 1.0 when the response names something of a film (``evaluate.on_topic``), else 0.0."""

    target: ClassVar[str] = "response"

    def __init__(self):
        super().__init__("on-topic")
        from rlhf_demo.evaluate import on_topic  # the evaluation's own judgement, not a copy

        self.judge = on_topic

    def score(self, texts):
        hits = [bool(self.judge(t)) for t in texts]
        return [float(h) for h in hits], [{"on_topic": h} for h in hits]


class RepetitionReward(RewardFunction):
    """``repetition``: 1 − distinct-2 of the response (:func:`repetition`); subtract it to punish collapse."""

    target: ClassVar[str] = "response"

    def __init__(self):
        super().__init__("repetition")

    def score(self, texts):
        scores = [repetition(t) for t in texts]
        return scores, [{"repetition": s} for s in scores]


def mean_logprob(bundle, queries: list[str], responses: list[str], batch_size: int = 16) -> list[float]:
    """The reference model's mean log-probability per response token, given the query:

        fluency(x, y) = (1/T) · Σ_{t=1..T} log π_ref(y_t | x, y_<t)  = log π_ref(y | x) / T

    with x and y tokenised separately by the model's tokenizer (no special tokens: the ids the policy
    wrote after the query's, up to re-tokenisation) and T the number of response tokens; 0.0 for an
    empty response (nothing to judge). A query with no tokens is given the BOS (else EOS) token as
    context. Batched (right-padded, so positions count from 0 in every row), without gradients, on the
    model's device; the values are ≤ 0, near −2…−3 nats for the default model's own samples and far
    lower for word salad."""
    tok, model = bundle.tokenizer, bundle.model
    device = next(model.parameters()).device
    start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    out: list[float] = []
    for b in range(0, len(queries), batch_size):
        rows = []
        for q, r in zip(queries[b : b + batch_size], responses[b : b + batch_size]):
            q_ids = tok(q, add_special_tokens=False)["input_ids"] or [start]
            rows.append((q_ids, tok(r, add_special_tokens=False)["input_ids"]))
        T = max(len(q) + len(r) for q, r in rows)
        ids = torch.tensor([q + r + [pad] * (T - len(q) - len(r)) for q, r in rows], device=device)  # [b, T]
        mask = torch.tensor([[1] * (len(q) + len(r)) + [0] * (T - len(q) - len(r)) for q, r in rows], device=device)  # [b, T]
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()  # [b, T-1, V]: predicts ids[:, 1:]
        logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)  # [b, T-1]
        for i, (q, r) in enumerate(rows):
            span = logp[i, len(q) - 1 : len(q) + len(r) - 1]  # [len(r)]: the response tokens' log-probs
            out.append(float(span.mean()) if len(r) else 0.0)
    return out


class FluencyReward(RewardFunction):
    """``fluency``: the reference (base) model's mean log-probability per response token given the query
    (:func:`mean_logprob`); what a reader of natural text wants beyond the words the other components
    look for. The model is the embedded default, loaded once and shared (``models.loading.REGISTRY``),
    frozen; ``bundle`` gives another (a test's tiny model)."""

    target: ClassVar[str] = "response"

    def __init__(self, bundle=None, batch_size: int = 16):
        super().__init__("fluency")
        if bundle is None:
            from rlhf_demo.models.loading import DEFAULT_MODEL, REGISTRY

            bundle = REGISTRY.get(DEFAULT_MODEL)
        self.bundle, self.batch_size = bundle, batch_size

    def score_episodes(self, texts, responses):
        """Given the responses, each text is query + response; without them the whole text is the
        response of an empty query."""
        if responses is None:
            queries, responses = [""] * len(texts), list(texts)
        else:
            queries = [t[: len(t) - len(r)] if r and t.endswith(r) else t for t, r in zip(texts, responses)]
        scores = mean_logprob(self.bundle, queries, responses, self.batch_size)
        return scores, [{"fluency": s} for s in scores], {self.name: list(scores)}

    def score(self, texts):
        scores, details, _ = self.score_episodes(list(texts), None)
        return scores, details


class RelevanceReward(FluencyReward):
    """``relevance``: the pointwise mutual information per response token between the query and the
    response under the reference model,

        relevance(x, y) = (1/T) · [log π_ref(y | x) − log π_ref(y)]  = fluency(x, y) − fluency(∅, y)

    where π_ref(y) is the response read after the BOS token alone (:func:`mean_logprob` with an empty
    query). Measured on the default model (64 shipped Goodhart pairs): chosen answers +1.3, the same
    answers shuffled onto other openings −0.1, one template after every opening −0.4 … −0.1. A whole
    text without its response split off has no opening of its own: 0. A policy
    that collapses onto one answer for every opening loses it, even when each answer alone stays fluent
    and unrepeated; that is what a gold scored one answer at a time can still see of the collapse."""

    def __init__(self, bundle=None, batch_size: int = 16):
        super().__init__(bundle, batch_size)
        self.name = "relevance"

    def score_episodes(self, texts, responses):
        if responses is None:
            return [0.0] * len(texts), [{"relevance": 0.0} for _ in texts], {self.name: [0.0] * len(texts)}
        given, _, _ = super().score_episodes(texts, responses)  # [n]: log π_ref(y | x) / T
        alone = mean_logprob(self.bundle, [""] * len(responses), list(responses), self.batch_size)  # [n]: log π_ref(y) / T
        scores = [g - a for g, a in zip(given, alone)]
        return scores, [{"relevance": s} for s in scores], {self.name: list(scores)}
