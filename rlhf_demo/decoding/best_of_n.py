"""Best-of-N: draw N responses from the policy, score each with a reward, keep the best.

    y_1, …, y_N ~ π(· | x) independently,      y* = argmax_i r(x, y_i)   (the first on ties)

The policy this defines, π_N, needs no training and is the baseline the over-optimisation literature
measures trained policies against (Stiennon et al. 2020; Gao et al. 2022, "Scaling laws for reward model
overoptimization"), because its KL to π is bounded in closed form:

    KL(π_N ‖ π) ≤ log N − (N − 1)/N

(Stiennon et al. 2020, appendix G.3, give it as the KL when the N samples are distinct; Beirami et al.
2024, "Theoretical guarantees on the best-of-n alignment policy", prove it is an upper bound.) N = 8:
≤ 1.20 nats, whatever the reward. :func:`kl_bound` is that formula; :func:`pick_best` the argmax.

In the Playground and ``generate --strategy best-of-n`` the strategy samples N = ``num_samples`` as
``sample`` does, then :func:`rank` scores them with the config's ``reward`` (a builder spec,
``rewards/spec.py``; default vader-positive; built by :func:`reward_for`) and shows all N best first,
each with its reward (``Sequence.score``), and a notice naming the reward, the pick, every score and
the bound. :func:`best_of_n` does the same with any reward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

from rlhf_demo.decoding.config import BEST_OF_N, DecodingConfig, DecodingError
from rlhf_demo.decoding.result import GenerationResult

KEPT_REWARDS = 2
"""Built rewards kept for the next request (a reward model holds a model): the most recently used."""


def kl_bound(n: int) -> float:
    """The analytic bound on best-of-N's KL to the policy it samples from, in nats:

    KL(π_N ‖ π) ≤ log N − (N − 1)/N          (0 for N = 1; ≈ log N − 1 for large N)
    """
    if n < 1:
        raise ValueError(f"best of N needs N ≥ 1, got {n}")
    return math.log(n) - (n - 1) / n


def pick_best(scores: list[float]) -> int:
    """``argmax_i scores[i]``, the first one on ties."""
    if not scores:
        raise ValueError("best of N needs at least one scored sample")
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


@dataclass
class BestOfN:
    """N responses to one prompt in the order drawn, the reward of each (of prompt + response) and the pick."""

    responses: list[str]
    scores: list[float]
    best: int  # index into responses (draw order)
    reward: str

    @property
    def n(self) -> int:
        return len(self.responses)

    @property
    def bound(self) -> float:
        return kl_bound(self.n)


def score_samples(prompt: str, responses: list[str], reward_fn) -> BestOfN:
    """Score ``prompt + response`` for each response (a reward's components get the responses too,
    ``rewards.functions.score_pairs``) and pick the best."""
    from rlhf_demo.rewards.functions import score_pairs

    scores = [float(s) for s in score_pairs(reward_fn, [prompt] * len(responses), list(responses))]
    return BestOfN(list(responses), scores, pick_best(scores), getattr(reward_fn, "name", getattr(reward_fn, "__name__", "reward")))


def summary(bon: BestOfN, order: list[int]) -> str:
    """The notice: every sample's reward in the order shown (its draw number beside it), the pick
    marked ★, and the bound."""
    shown = " · ".join(f"{'★ ' if i == bon.best else ''}{bon.scores[i]:+.3f} (drawn {i + 1})" for i in order)
    return (
        f"Best of {bon.n} by {bon.reward} (the reward of prompt + response), shown best first: {shown}. "
        f"KL(best-of-{bon.n} ‖ this policy) ≤ log {bon.n} − {bon.n - 1}/{bon.n} = {bon.bound:.2f} nats."
    )


def rank(result: GenerationResult, reward_fn) -> tuple[GenerationResult, BestOfN]:
    """Score ``result``'s sequences, put them best first (ties keep their draw order) with their reward
    as ``Sequence.score``, and add :func:`summary` as the first notice. The raw logits follow their
    sequences."""
    bon = score_samples(result.prompt_text, [s.text for s in result.sequences], reward_fn)
    order = sorted(range(bon.n), key=lambda i: (-bon.scores[i], i))
    seqs = [replace(result.sequences[i], score=bon.scores[i]) for i in order]
    raw = None if result.raw_logits is None else [result.raw_logits[i] for i in order]
    ranked = replace(result, sequences=seqs, raw_logits=raw, notices=[summary(bon, order), *result.notices])
    return ranked, bon


@lru_cache(maxsize=KEPT_REWARDS)
def _built(spec: str):
    from rlhf_demo.rewards.functions import make_reward

    return make_reward(spec)


def reward_for(spec: str):
    """Best-of-N's reward for a config's ``reward`` spec (checked by ``DecodingConfig.validate``): the
    last :data:`KEPT_REWARDS` built are kept (VADER's lexicon, a reward model); a spec with a ``py:`` term
    is loaded afresh each time (its file may have been edited). DecodingError in one line if it cannot
    be built."""
    from rlhf_demo.rewards.functions import RewardError, make_reward

    try:
        return make_reward(spec) if "py:" in spec else _built(spec)
    except RewardError as exc:
        raise DecodingError(f"best-of-N reward: {exc}") from None


def best_of_n(bundle, prompt: str, n: int, reward_fn, cfg: DecodingConfig | None = None) -> tuple[GenerationResult, BestOfN]:
    """Draw ``n`` samples of ``prompt`` from ``bundle``'s model with ``cfg``'s sampling settings (default:
    the dataclass defaults), score them with ``reward_fn`` and rank them (:func:`rank`)."""
    from rlhf_demo.decoding.generate import generate

    cfg = replace(cfg or DecodingConfig(), strategy=BEST_OF_N, num_samples=n).validate()  # N ≥ 2, T > 0
    ranked, bon = rank(generate(bundle, prompt, replace(cfg, strategy="sample")), reward_fn)
    return replace(ranked, config=cfg), bon
