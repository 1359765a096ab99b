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

Every reward keeps its raw outputs (``last_details``; the course's ``pipe_outputs``) for display.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


class RewardError(ValueError):
    """A reward function could not be built; the message says why."""


REWARD_CHOICES = ["vader-positive", "vader-negative", "length", "keyword:great", "hf:lvwerra/distilbert-imdb:POSITIVE"]


@dataclass
class RewardFunction:
    """Base class: call with a list of texts, get a list of floats."""

    name: str
    last_details: list = field(default_factory=list, repr=False)

    def __call__(self, texts: list[str]) -> list[float]:
        scores, details = self.score(list(texts))
        self.last_details = details
        return scores

    def score(self, texts: list[str]) -> tuple[list[float], list]:
        raise NotImplementedError


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


def make_reward(spec: str, device=None) -> RewardFunction:
    """Build a reward from its name (see the module docstring)."""
    spec = (spec or "").strip()
    if spec == "vader-positive":
        return VaderReward(+1.0)
    if spec == "vader-negative":
        return VaderReward(-1.0)
    if spec == "length":
        return LengthReward()
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
    raise RewardError(f"unknown reward {spec!r}: use vader-positive, vader-negative, length, keyword:WORD, hf:MODEL:LABEL or rm:RUN_DIR")
