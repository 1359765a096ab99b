"""The decoding knobs of the playground and ``python -m rlhf_demo generate``, and their checks.

Every value may come straight from an HTTP request, so :meth:`DecodingConfig.validate` turns nonsense
into a :class:`DecodingError` whose message says what to change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

MAX_NEW_TOKENS = 512
MAX_SEQUENCES = 8
MAX_PROMPT_TOKENS = 1024
"""Longer prompts keep their last tokens (a 2-core CPU would take long over a full 8k context)."""
MAX_PROMPT_CHARS = 20_000
MAX_BIAS = 100.0
MAX_BIAS_WORDS = 16
STRATEGIES = ("sample", "greedy", "beam")


class DecodingError(ValueError):
    """Bad decoding settings or prompt; the message says what to change."""


def _help(text: str, default, **kw):
    return field(default=default, metadata={"help": text, **kw})


@dataclass
class DecodingConfig:
    """Every decoding knob of the playground and ``python -m rlhf_demo generate``."""

    strategy: str = _help("'sample' (draw from the processed distribution), 'greedy' (argmax) or 'beam' (beam search).", "sample")
    temperature: float = _help("Divide logits by T before softmax: T<1 sharpens, T>1 flattens; T=0 means greedy.", 1.0)
    top_k: int = _help("Keep only the k most probable tokens (0 = off).", 50)
    top_p: float = _help("Nucleus: keep the smallest set of tokens whose probability sums to ≥ p (1 = off).", 1.0)
    min_p: float = _help("Drop tokens whose probability is below min_p × the top token's (0 = off).", 0.0)
    repetition_penalty: float = _help(
        "Divide positive (multiply negative) logits of tokens already in the text by r (1 = off). Keskar et al. 2019.", 1.0
    )
    no_repeat_ngram_size: int = _help("Forbid any n-gram of this size from occurring twice (0 = off).", 0)
    num_beams: int = _help("Beams kept by beam search (strategy 'beam'); all are returned with their log-probabilities.", 4)
    max_new_tokens: int = _help(f"Stop after this many new tokens (1–{MAX_NEW_TOKENS}).", 32)
    min_new_tokens: int = _help("End-of-sequence is forbidden before this many new tokens.", 0)
    num_samples: int = _help(f"Independent samples drawn from the same prompt (1–{MAX_SEQUENCES}; sampling only).", 1)
    seed: int = _help("Random seed: the same seed and settings give the same samples.", 0)
    word_bias: dict = _help(
        "Words → logit bias added when the word would come next (transformers' sequence_bias), e.g. {'great': 5}.", None
    )
    chat_template: bool = _help("Wrap the prompt in the model's chat template as a user message.", False)

    # ------------------------------------------------------------------ validation
    def validate(self, vocab_size: int | None = None) -> DecodingConfig:
        """Check every value (they may come straight from an HTTP request); return a clean copy."""
        c = replace(self, word_bias=dict(self.word_bias or {}))
        if c.strategy not in STRATEGIES:
            raise DecodingError(f"strategy must be one of {', '.join(STRATEGIES)} (got {c.strategy!r})")
        c.temperature = _real("temperature", c.temperature, 0.0, 100.0)
        c.top_p = _real("top_p", c.top_p, 0.0, 1.0)
        if c.top_p <= 0.0:
            raise DecodingError("top_p must be > 0 (top_p = 0 would keep no token); use 1 to turn it off")
        c.min_p = _real("min_p", c.min_p, 0.0, 1.0)
        if c.min_p >= 1.0:
            raise DecodingError("min_p must be < 1 (1 would drop every token but ties of the top one); use 0 to turn it off")
        c.repetition_penalty = _real("repetition_penalty", c.repetition_penalty, 0.0, 10.0)
        if c.repetition_penalty <= 0.0:
            raise DecodingError("repetition_penalty must be > 0 (1 = off, >1 discourages repeats)")
        c.top_k = _int("top_k", c.top_k, 0, None)
        if vocab_size is not None and c.top_k > vocab_size:
            raise DecodingError(f"top_k = {c.top_k} is larger than the vocabulary ({vocab_size} tokens); use 0 to turn top-k off")
        c.no_repeat_ngram_size = _int("no_repeat_ngram_size", c.no_repeat_ngram_size, 0, 16)
        c.num_beams = _int("num_beams", c.num_beams, 1, MAX_SEQUENCES)
        c.max_new_tokens = _int("max_new_tokens", c.max_new_tokens, 1, MAX_NEW_TOKENS)
        c.min_new_tokens = _int("min_new_tokens", c.min_new_tokens, 0, MAX_NEW_TOKENS)
        if c.min_new_tokens > c.max_new_tokens:
            raise DecodingError(f"min_new_tokens ({c.min_new_tokens}) is larger than max_new_tokens ({c.max_new_tokens})")
        c.num_samples = _int("num_samples", c.num_samples, 1, MAX_SEQUENCES)
        c.seed = _int("seed", c.seed, 0, 2**32 - 1)
        if c.strategy == "beam" and c.num_beams < 2:
            raise DecodingError("beam search needs num_beams ≥ 2 (one beam is greedy decoding)")
        if len(c.word_bias) > MAX_BIAS_WORDS:
            raise DecodingError(f"at most {MAX_BIAS_WORDS} biased words")
        clean = {}
        for word, bias in c.word_bias.items():
            if not isinstance(word, str) or not word.strip() or len(word) > 50:
                raise DecodingError(f"a biased word must be 1–50 characters (got {word!r})")
            clean[word.strip()] = _real(f"bias of {word!r}", bias, -MAX_BIAS, MAX_BIAS)
        c.word_bias = clean
        c.chat_template = bool(c.chat_template)
        return c

    @property
    def mode(self) -> str:
        """The decoding actually run: temperature 0 turns sampling into greedy decoding."""
        if self.strategy == "sample" and self.temperature == 0.0:
            return "greedy"
        return self.strategy

    @property
    def num_sequences(self) -> int:
        return {"sample": self.num_samples, "greedy": 1, "beam": self.num_beams}[self.mode]

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}


def _real(name: str, value, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DecodingError(f"{name} must be a number (got {value!r})")
    v = float(value)
    if not math.isfinite(v):
        raise DecodingError(f"{name} must be a finite number (got {v})")
    if not lo <= v <= hi:
        raise DecodingError(f"{name} must be between {lo:g} and {hi:g} (got {v:g})")
    return v


def _int(name: str, value, lo: int, hi: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)) or float(value) != int(value):
        raise DecodingError(f"{name} must be a whole number (got {value!r})")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        raise DecodingError(f"{name} must be between {lo} and {hi if hi is not None else '∞'} (got {v})")
    return v


def parse_word_bias(text: str) -> dict[str, float]:
    """``"great: 5, terrible: -10"`` → ``{"great": 5.0, "terrible": -10.0}`` (the UI/CLI syntax)."""
    out: dict[str, float] = {}
    for part in (text or "").replace("\n", ",").split(","):
        if not part.strip():
            continue
        word, sep, num = part.rpartition(":")
        if not sep or not word.strip():
            raise DecodingError(f"word bias {part.strip()!r}: write WORD:BIAS, e.g. 'great:5, terrible:-10'")
        try:
            out[word.strip()] = float(num)
        except ValueError:
            raise DecodingError(f"word bias {part.strip()!r}: {num.strip()!r} is not a number") from None
    return out
