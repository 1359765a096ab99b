"""What one generation returns: per sequence its text, tokens and every step's numbers (the chosen
token's processed and raw probability, the raw distribution's entropy, the top candidates), and the
raw logits kept for re-processing. Plain data: ``decoding.generate`` fills it, the Playground, the CLI's
``--json`` and the Branch view read it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from rlhf_demo.decoding.config import DecodingConfig


@dataclass
class Candidate:
    token: str
    token_id: int
    raw_prob: float
    prob: float


@dataclass
class Step:
    token: str
    token_id: int
    prob: float  # processed probability of the chosen token
    raw_prob: float  # plain softmax probability of the chosen token
    entropy: float  # of the raw distribution, nats
    top: list[Candidate]  # top-N under the processed distribution (filtered tokens last, by raw prob)
    forced: bool = False  # chosen by hand in a branch, not by the decoder


@dataclass
class Sequence:
    text: str
    token_ids: list[int]
    steps: list[Step]
    cum_logprob: float  # Σ_t log prob_t(chosen) under the processed distribution (beam search's score)
    score: float | None = None  # beam search: cum_logprob / length^length_penalty
    finished: bool = False  # ended with end-of-sequence


@dataclass
class GenerationResult:
    model: str
    mode: str
    config: DecodingConfig
    prompt_text: str
    prompt_ids: list[int]
    sequences: list[Sequence]
    processors: list[str]
    notices: list[str] = field(default_factory=list)
    raw_logits: list[np.ndarray] | None = None  # per sequence [T_s, V] float32, for re-processing
    seconds: float = 0.0
    batch: int = 1  # requests that ran in the same model.generate (decoding/batch.py)
    logits_key: str | None = None  # where a LogitStore keeps the raw logits instead (decoding/kept.py)

    def to_dict(self) -> dict:
        """The CLI's ``--json`` schema (and a few extra fields)."""
        return {
            "model": self.model,
            "mode": self.mode,
            "prompt": self.prompt_text,
            "processors": self.processors,
            "notices": self.notices,
            "config": asdict(self.config),
            "seconds": round(self.seconds, 3),
            "sequences": [
                {
                    "text": s.text,
                    "cum_logprob": s.cum_logprob,
                    "score": s.score,
                    "finished": s.finished,
                    "steps": [asdict(st) for st in s.steps],
                }
                for s in self.sequences
            ],
        }
