"""Reward functions behind one interface: texts -> scores.

- ``vader-positive`` / ``vader-negative``: VADER's compound sentiment in [-1, 1] (offline default);
  negative flips the sign.
- ``hf:MODEL:LABEL[:logit|prob]``: any ``text-classification`` pipeline (local folder or Hub id, e.g.
  the course's ``lvwerra/distilbert-imdb``); the score of the label chosen **by name**, as the raw
  logit (default, as in the course) or the softmax probability.
- ``length``: number of words / 10 (a toy reward that is easy to hack: responses get longer).
- ``keyword:WORD``: 1 for every occurrence of WORD (toy: the policy learns to repeat it).
- ``rm:RUN_DIR``: a reward model trained on preference pairs (``train --algo reward``; ``learned.py``).
  It scores the decoded query + response *text* with its own tokenizer, so it may differ from the
  policy's; batched, without gradients, on the device given (the PPO trainer passes the policy's).
- ``on-topic``, ``repetition``, ``fluency``, ``relevance``: whether the *response* names something of a
  film, 1 − its distinct-2, the default model's mean log-probability per response token given the query,
  and how much more likely the query makes the response (per token; ``components.py``).
- ``py:PATH:FUNC``: a Python function ``f(texts) -> scores`` in a file, locally only (``python.py``).
- a weighted sum of these, ``0.7*vader-positive + 0.3*on-topic - 0.5*repetition`` (the builder's spec,
  ``spec.py``; ``composite.py``). A single name builds that reward itself, as before.

A reward is called with the query + response texts, ``reward(texts)``, and may be given the responses
too, ``reward(texts, responses=...)`` (``score_pairs``): a component whose ``target`` is "response"
scores those. Every reward keeps its raw outputs (``last_details``; the course's ``pipe_outputs``) for
display, and each component's scores (``last_components``: name → scores; a single reward: its own).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

from rlhf_demo.rewards.spec import SpecError, parse_spec, single_name


class RewardError(ValueError):
    """A reward function could not be built; the message says why."""


REWARD_CHOICES = [
    "vader-positive",
    "vader-negative",
    "length",
    "on-topic",
    "repetition",
    "fluency",
    "relevance",
    "keyword:great",
    "hf:lvwerra/distilbert-imdb:POSITIVE",
]
"""The components the UI offers (the reward builder's rows, the Playground's best-of-N); those without ``:``
are also the plain names a shared server builds (``classroom.allowlist.check_reward``)."""


@dataclass
class RewardFunction:
    """Base class: call with a list of texts (query + response), get a list of floats.

    ``target``: what the reward is about, "text" (query + response, the default) or "response" (the
    response alone, when the caller passes ``responses``). Subclasses implement ``score(inputs)`` →
    (scores, details); a sum of rewards overrides ``score_episodes``."""

    name: str
    last_details: list = field(default_factory=list, repr=False)
    last_components: dict = field(default_factory=dict, repr=False)
    target: ClassVar[str] = "text"

    def __call__(self, texts: list[str], responses: list[str] | None = None) -> list[float]:
        texts = list(texts)
        if responses is not None and len(responses) != len(texts):
            raise ValueError(f"{len(responses)} responses for {len(texts)} texts")
        scores, details, components = self.score_episodes(texts, None if responses is None else list(responses))
        self.last_details, self.last_components = details, components
        return scores

    def score_episodes(self, texts: list[str], responses: list[str] | None) -> tuple[list[float], list, dict]:
        """(scores, details, components {name: scores}) of what the reward is about (``target``)."""
        scores, details = self.score(responses if self.target == "response" and responses is not None else texts)
        return scores, details, {self.name: list(scores)}

    def score(self, texts: list[str]) -> tuple[list[float], list]:
        raise NotImplementedError


def score_pairs(reward_fn, queries: list[str], responses: list[str]) -> list[float]:
    """``reward_fn`` on the query + response texts; a ``RewardFunction`` is given the responses as well
    (for its components that score the response alone). Any other callable ``f(texts)`` gets the texts."""
    texts = [q + r for q, r in zip(queries, responses)]
    if isinstance(reward_fn, RewardFunction):
        return reward_fn(texts, responses=list(responses))
    return reward_fn(texts)


class VaderReward(RewardFunction):
    def __init__(self, sign: float = 1.0):
        super().__init__("vader-positive" if sign > 0 else "vader-negative")
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self.sign = sign
        self.analyzer = SentimentIntensityAnalyzer()

    def score(self, texts):
        details = [self.analyzer.polarity_scores(t) for t in texts]
        return [self.sign * d["compound"] for d in details], details


class LengthReward(RewardFunction):
    def __init__(self):
        super().__init__("length")

    def score(self, texts):
        n = [len(t.split()) for t in texts]
        return [k / 10.0 for k in n], [{"words": k} for k in n]


class KeywordReward(RewardFunction):
    def __init__(self, word: str):
        if not word.strip():
            raise RewardError("keyword reward needs a word: keyword:WORD")
        super().__init__(f"keyword:{word}")
        self.pattern = re.compile(r"\b" + re.escape(word.strip()) + r"\b", re.IGNORECASE)

    def score(self, texts):
        n = [len(self.pattern.findall(t)) for t in texts]
        return [float(k) for k in n], [{"count": k} for k in n]


class PipelineReward(RewardFunction):
    """A ``text-classification`` pipeline; the score of ``label`` picked by name, never by position."""

    def __init__(self, model: str, label: str, kind: str = "logit", device=None):
        super().__init__(f"hf:{model}:{label}:{kind}")
        if kind not in ("logit", "prob"):
            raise RewardError(f"reward kind must be 'logit' or 'prob', not {kind!r}")
        from pathlib import Path

        from transformers import pipeline

        from rlhf_demo.models.loading import ModelLoadError, require_hub

        if not Path(model).expanduser().exists():
            try:
                require_hub(model, "use vader-positive / vader-negative, or a local text-classification model folder")
            except ModelLoadError as exc:
                raise RewardError(f"reward model: {exc}") from exc
        try:
            self.pipe = pipeline("text-classification", model=model, device=device, trust_remote_code=False)
        except Exception as exc:  # noqa: BLE001
            raise RewardError(
                f"could not load reward model {model!r}: not a local folder, and the Hub is unreachable "
                f"or has no such model ({type(exc).__name__})"
            ) from exc
        labels = list(self.pipe.model.config.id2label.values())
        if label not in labels:
            raise RewardError(f"reward model {model!r} has no label {label!r}; its labels are {labels}")
        self.label, self.kind = label, kind

    def score(self, texts):
        fn = "none" if self.kind == "logit" else "softmax"
        outs = self.pipe(texts, top_k=None, function_to_apply=fn, truncation=True, batch_size=16)
        scores = []
        for out in outs:
            by_name = {o["label"]: o["score"] for o in out}
            scores.append(float(by_name[self.label]))
        return scores, outs


UNKNOWN = (
    "use vader-positive, vader-negative, length, keyword:WORD, on-topic, repetition, fluency, relevance, hf:MODEL:LABEL, "
    "rm:RUN_DIR, py:FILE:FUNC, or a weighted sum such as 0.7*vader-positive + 0.3*on-topic - 0.5*repetition"
)


def make_reward(spec: str, device=None) -> RewardFunction:
    """Build a reward from its spec (see the module docstring): one name, or a weighted sum of names."""
    spec = (spec or "").strip()
    name = single_name(spec)
    if name is not None or not spec:
        return make_component(spec, device=device)
    try:
        terms = parse_spec(spec)
    except SpecError as exc:
        raise RewardError(str(exc)) from None
    from rlhf_demo.rewards.composite import CompositeReward

    return CompositeReward([(t, make_component(t.name, device=device)) for t in terms])


def make_component(spec: str, device=None) -> RewardFunction:
    """Build one named reward (a term of a builder spec, or a whole single-name spec)."""
    if spec == "vader-positive":
        return VaderReward(+1.0)
    if spec == "vader-negative":
        return VaderReward(-1.0)
    if spec == "length":
        return LengthReward()
    if spec in ("on-topic", "repetition"):
        from rlhf_demo.rewards.components import OnTopicReward, RepetitionReward

        return OnTopicReward() if spec == "on-topic" else RepetitionReward()
    if spec in ("fluency", "relevance"):
        from rlhf_demo.rewards.components import FluencyReward, RelevanceReward

        return FluencyReward() if spec == "fluency" else RelevanceReward()
    if spec.startswith("keyword:"):
        return KeywordReward(spec.split(":", 1)[1])
    if spec.startswith("hf:"):
        parts = spec[3:].split(":")
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise RewardError("pipeline reward is written hf:MODEL:LABEL[:logit|prob]")
        kind = parts[2] if len(parts) > 2 else "logit"
        return PipelineReward(parts[0], parts[1], kind, device=device)
    if spec.startswith("rm:"):
        from rlhf_demo.rewards.learned import LearnedReward

        return LearnedReward(spec[3:].strip(), device=device)
    if spec.startswith("py:"):
        from rlhf_demo.rewards.python import PythonReward

        return PythonReward(spec[3:])
    raise RewardError(f"unknown reward {spec!r}: {UNKNOWN}")
