"""Reward components that judge the *response* alone (the builder's ``on-topic`` and ``repetition``).

Sentiment rewards score query + response, as the course does; these two are about what the policy
wrote, so they score the response (``target = "response"``): a rollout that passes the responses
(``functions.score_pairs``) gives them exactly that. Called with whole texts only, they score the whole
text (the openings mostly name the film already, so ``on-topic`` then says little).

- ``on-topic`` = 1 when the response names something of a film, else 0: the judgement of
  ``evaluate.on_topic`` (a word beginning with one of ``evaluate.FILM_WORDS``), the one the held-out
  evaluation's ``eval/on_topic`` share is made of.
- ``repetition`` = 1 − distinct-2 of the response (see :func:`repetition`): 0 for text that never
  repeats a word pair, towards 1 for collapsed text ("love love love ...").

Both are meant as terms of a builder spec: ``0.7*vader-positive + 0.3*on-topic - 0.5*repetition``.
"""

from __future__ import annotations

from typing import ClassVar

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
