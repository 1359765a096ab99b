"""The decoding knobs of the playground and ``python -m rlhf_demo generate``, and their checks.

The knobs follow the project's one convention (``rlhf_demo/config.py``): help, kind, range, label and
the Playground's slider span in each field's metadata, from which ``generate``'s flags and the
Playground's widgets are built. Every value may come straight from an HTTP request, so
:meth:`DecodingConfig.validate` turns nonsense into a :class:`DecodingError` whose message says what to
change.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from rlhf_demo.config import KnobConfig, knob

MAX_NEW_TOKENS = 512
MAX_SEQUENCES = 8
MAX_PROMPT_TOKENS = 1024
"""Longer prompts keep their last tokens (a 2-core CPU would take long over a full 8k context)."""
MAX_PROMPT_CHARS = 20_000
MAX_BIAS = 100.0
MAX_BIAS_WORDS = 16
STRATEGIES = ("sample", "greedy", "beam", "best-of-n")
BEST_OF_N = "best-of-n"
"""Sample ``num_samples`` = N, score each with ``reward``, show them best first (``decoding/best_of_n.py``)."""
DEFAULT_REWARD = "vader-positive"
"""Best-of-N's reward unless told otherwise (query + response, as PPO's)."""


class DecodingError(ValueError):
    """Bad decoding settings or prompt; the message says what to change."""


@dataclass
class DecodingConfig(KnobConfig):
    """Every decoding knob of the playground and ``python -m rlhf_demo generate``, declared as knobs
    (``rlhf_demo/config.py``): the CLI's flags and the Playground's widgets are built from them.

    Presets: ``plain`` (the dataclass defaults: transformers' own, T = 1, top-k 50; the CLI's) and
    ``playground`` (what the Playground opens with: a little sharper, fewer tokens)."""

    NAME: ClassVar[str] = "decoding"
    PRESETS: ClassVar[dict[str, dict]] = {
        "plain": {},
        "playground": {"temperature": 0.8, "top_k": 40, "top_p": 0.95, "max_new_tokens": 20},
    }
    PRESET_LABELS: ClassVar[dict[str, str]] = {"plain": "transformers' defaults", "playground": "the Playground's start"}
    DEFAULT_PRESET: ClassVar[str] = "plain"
    ERROR: ClassVar[type[ValueError]] = DecodingError

    strategy: str = knob(
        "sample",
        "'sample' (draw from the processed distribution), 'greedy' (argmax), 'beam' (beam search) or "
        "'best-of-n' (draw N = Samples, score each with the best-of-N reward, best first, with the KL bound log N − (N−1)/N).",
        kind="choice",
        choices=STRATEGIES,
        label="Decoding",
    )
    temperature: float = knob(
        1.0,
        "Divide logits by T before softmax: T<1 sharpens, T>1 flattens; T=0 means greedy.",
        kind="float",
        lo=0.0,
        hi=100.0,
        label="Temperature",
        slider=(0, 2, 0.05),
    )
    top_k: int = knob(50, "Keep only the k most probable tokens (0 = off).", kind="int", lo=0, label="Top-k", slider=(0, 200, 1))
    top_p: float = knob(
        1.0,
        "Nucleus: keep the smallest set of tokens whose probability sums to ≥ p (1 = off).",
        kind="float",
        lo=0.0,
        hi=1.0,
        label="Top-p",
        slider=(0.05, 1, 0.01),
    )
    min_p: float = knob(
        0.0,
        "Drop tokens whose probability is below min_p × the top token's (0 = off).",
        kind="float",
        lo=0.0,
        hi=1.0,
        label="Min-p",
        slider=(0, 0.5, 0.01),
    )
    repetition_penalty: float = knob(
        1.0,
        "Divide positive (multiply negative) logits of tokens already in the text by r (1 = off). Keskar et al. 2019.",
        kind="float",
        lo=0.0,
        hi=10.0,
        label="Repetition penalty",
        slider=(0.5, 2, 0.05),
    )
    no_repeat_ngram_size: int = knob(
        0,
        "Forbid any n-gram of this size from occurring twice (0 = off).",
        kind="int",
        lo=0,
        hi=16,
        label="No-repeat n-gram size",
        slider=(0, 6, 1),
    )
    num_beams: int = knob(
        4,
        "Beams kept by beam search (strategy 'beam'; on the command line B > 1 chooses it); all are returned with their log-probabilities.",
        kind="int",
        lo=1,
        hi=MAX_SEQUENCES,
        label="Beams",
        slider=(2, MAX_SEQUENCES, 1),
    )
    max_new_tokens: int = knob(
        32,
        f"Stop after this many new tokens (1–{MAX_NEW_TOKENS}).",
        kind="int",
        lo=1,
        hi=MAX_NEW_TOKENS,
        label="Max new tokens",
        slider=(1, 128, 1),
    )
    min_new_tokens: int = knob(
        0,
        "End-of-sequence is forbidden before this many new tokens.",
        kind="int",
        lo=0,
        hi=MAX_NEW_TOKENS,
        label="Min new tokens",
        slider=(0, 64, 1),
    )
    num_samples: int = knob(
        1,
        f"Independent samples drawn from the same prompt (1–{MAX_SEQUENCES}; sampling only).",
        kind="int",
        lo=1,
        hi=MAX_SEQUENCES,
        label="Samples (side by side)",
        flag="num_return_sequences",  # the public flag, as transformers names it
        slider=(1, MAX_SEQUENCES, 1),
    )
    seed: int = knob(0, "Random seed: the same seed and settings give the same samples.", kind="int", lo=0, hi=2**32 - 1, label="Seed")
    word_bias: dict | None = knob(
        None,
        "Add this to the logit of a word when it could come next (transformers' sequence_bias), e.g. 'great: 5, terrible: -10'.",
        kind="weights",
        label="Word bias",
        parse=lambda text: parse_word_bias(text),
    )
    chat_template: bool = knob(
        False,
        "Wrap the prompt in the model's chat template as a user message.",
        kind="bool",
        label="Wrap in the chat template",
        flag="chat",
    )
    reward: str = knob(
        DEFAULT_REWARD,
        "What best-of-n scores its N samples with (prompt + response): a reward name or a weighted sum, as training's "
        "reward ('0.7*vader-positive + 0.3*on-topic - 0.5*repetition'); used by the best-of-n strategy only.",
        kind="str",
        label="Best-of-N reward",
    )

    # ------------------------------------------------------------------ validation
    def validate(self, vocab_size: int | None = None) -> DecodingConfig:
        """Check every value (they may come straight from an HTTP request): each knob's kind and range
        (``KnobConfig.validate``), then ``check()`` and the vocabulary. Return a clean copy."""
        c = KnobConfig.validate(replace(self))
        if vocab_size is not None and c.top_k > vocab_size:
            raise DecodingError(f"top_k = {c.top_k} is larger than the vocabulary ({vocab_size} tokens); use 0 to turn top-k off")
        return c

    def check(self) -> None:
        if self.top_p <= 0.0:
            raise DecodingError("top_p must be > 0 (top_p = 0 would keep no token); use 1 to turn it off")
        if self.min_p >= 1.0:
            raise DecodingError("min_p must be < 1 (1 would drop every token but ties of the top one); use 0 to turn it off")
        if self.repetition_penalty <= 0.0:
            raise DecodingError("repetition_penalty must be > 0 (1 = off, >1 discourages repeats)")
        if self.min_new_tokens > self.max_new_tokens:
            raise DecodingError(f"min_new_tokens ({self.min_new_tokens}) is larger than max_new_tokens ({self.max_new_tokens})")
        if self.strategy == "beam" and self.num_beams < 2:
            raise DecodingError("beam search needs num_beams ≥ 2 (one beam is greedy decoding)")
        if self.strategy == BEST_OF_N and self.num_samples < 2:
            raise DecodingError("best of N needs num_samples (Samples) ≥ 2: N samples are drawn and the best is picked")
        if self.strategy == BEST_OF_N and self.temperature == 0.0:
            raise DecodingError("best of N samples at temperature > 0 (at 0 all N would be the same greedy text)")
        if self.strategy == BEST_OF_N:
            self.reward = check_reward(self.reward)
        if len(self.word_bias) > MAX_BIAS_WORDS:
            raise DecodingError(f"at most {MAX_BIAS_WORDS} biased words")
        clean = {}
        for word, bias in self.word_bias.items():
            if not isinstance(word, str) or not word.strip() or len(word) > 50:
                raise DecodingError(f"a biased word must be 1–50 characters (got {word!r})")
            if not -MAX_BIAS <= bias <= MAX_BIAS:
                raise DecodingError(f"bias of {word!r} must be between {-MAX_BIAS:g} and {MAX_BIAS:g} (got {bias:g})")
            clean[word.strip()] = bias
        self.word_bias = clean

    @property
    def mode(self) -> str:
        """The decoding actually run: temperature 0 turns sampling into greedy decoding; best of N samples."""
        if self.strategy == "sample" and self.temperature == 0.0:
            return "greedy"
        return "sample" if self.strategy == BEST_OF_N else self.strategy

    @property
    def num_sequences(self) -> int:
        return {"sample": self.num_samples, "greedy": 1, "beam": self.num_beams}[self.mode]


def check_reward(spec: str) -> str:
    """Best-of-N's reward spec as training's: it parses (``rewards/spec.py``) and, on a shared server, the
    allowlist builds it (``allowlist.check_reward``: never ``py:``); DecodingError in one line if not.
    The spec cleaned; nothing is built here (``best_of_n.reward_for`` does)."""
    from rlhf_demo.classroom.allowlist import check_reward as allowed
    from rlhf_demo.rewards.spec import SpecError, parse_spec

    try:
        parse_spec(spec)
        return allowed(spec.strip())
    except (SpecError, ValueError) as exc:
        raise DecodingError(f"best-of-N {exc}") from None  # "best-of-N reward spec …", "best-of-N reward: py: …"


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
