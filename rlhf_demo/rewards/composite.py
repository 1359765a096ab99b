"""A reward built from components: the weighted sum a builder spec describes (``spec.py``).

    r(x, y) = Σ_i w_i · r_i(x, y)

Each component r_i scores what it is about (``RewardFunction.target``): the sentiment rewards, a
reward model or a ``py:`` function the query + response text x + y, ``on-topic`` and ``repetition`` the
response y alone (when the caller passes the responses: ``functions.score_pairs``). Every component's
score of every text is kept (``last_components``: name → scores, the names as the spec writes them),
so a batch row can show them beside the total; the per-text details are those scores too
(``{name: r_i}``), which the batch table's details column prints as they are.
"""

from __future__ import annotations

from rlhf_demo.rewards.functions import RewardFunction
from rlhf_demo.rewards.spec import Term, format_spec


class CompositeReward(RewardFunction):
    """``Σ_i w_i · r_i`` over ``(term, reward)`` pairs (a term's name keys its scores)."""

    def __init__(self, parts: list[tuple[Term, RewardFunction]]):
        super().__init__(format_spec([t for t, _ in parts]))
        self.parts = list(parts)

    @property
    def weights(self) -> dict[str, float]:
        return {t.name: t.weight for t, _ in self.parts}

    def score_episodes(self, texts, responses):
        per = {t.name: [float(s) for s in fn(texts, responses=responses)] for t, fn in self.parts}  # name → [n]
        total = [sum(t.weight * per[t.name][i] for t, _ in self.parts) for i in range(len(texts))]
        details = [{name: scores[i] for name, scores in per.items()} for i in range(len(texts))]
        return total, details, per

    def score(self, texts):
        """Whole texts only (every component scores query + response): (totals, per text {name: r_i})."""
        total, details, per = self.score_episodes(list(texts), None)
        self.last_components = per
        return total, details
