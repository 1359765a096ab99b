"""Decoding with every step's distribution: the raw softmax beside the one actually sampled from.

At step t a causal LM gives logits ``z_t ∈ R^V`` for the next token. ``generate()`` turns them into
the distribution it samples from by a chain of *logits processors* (repetition penalty, n-gram ban,
min-tokens, sequence bias, then the sampling "warpers" temperature → top-k → top-p → min-p)::

    raw_prob_t  = softmax(z_t)                                   # what the model believes
    prob_t      = softmax(P_K ∘ … ∘ P_1 (prefix_t, z_t))         # what is sampled from
    entropy_t   = −Σ_v raw_prob_t[v] · log raw_prob_t[v]          # nats, of the raw distribution

We never re-implement a processor: :func:`build_processors` asks transformers for the very
``LogitsProcessorList`` that ``generate()`` builds, and ``generate(..., output_logits=True,
return_dict_in_generate=True)`` gives ``out.logits`` = z_t, so stored raw logits can be re-processed
later (new temperature / top-k / top-p) without generating again (see ``explore.py``).

Sampling never touches the global RNG (``generate()`` would draw with ``torch.multinomial`` on it):
it runs greedy search over the scores of one more, last processor, an
:class:`~rlhf_demo.decoding.sampling.InverseCDFSampler` on a ``torch.Generator`` seeded with
``cfg.seed``, which draws from ``softmax(processed scores)``, keeps those scores (reported as
``prob_t``: exactly the distribution sampled from) and leaves only the drawn token finite. Greedy
and beam search draw nothing; their processed scores are ``out.scores``.

What is simplified here: one prompt at a time (no batching of prompts).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
import torch

from rlhf_demo.decoding.sampling import InverseCDFSampler, make_generator

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
    repetition_penalty: float = _help("Divide positive (multiply negative) logits of tokens already in the text by r (1 = off). Keskar et al. 2019.", 1.0)
    no_repeat_ngram_size: int = _help("Forbid any n-gram of this size from occurring twice (0 = off).", 0)
    num_beams: int = _help("Beams kept by beam search (strategy 'beam'); all are returned with their log-probabilities.", 4)
    max_new_tokens: int = _help(f"Stop after this many new tokens (1–{MAX_NEW_TOKENS}).", 32)
    min_new_tokens: int = _help("End-of-sequence is forbidden before this many new tokens.", 0)
    num_samples: int = _help(f"Independent samples drawn from the same prompt (1–{MAX_SEQUENCES}; sampling only).", 1)
    seed: int = _help("Random seed: the same seed and settings give the same samples.", 0)
    word_bias: dict = _help("Words → logit bias added when the word would come next (transformers' sequence_bias), e.g. {'great': 5}.", None)
    chat_template: bool = _help("Wrap the prompt in the model's chat template as a user message.", False)

    # ------------------------------------------------------------------ validation
    def validate(self, vocab_size: int | None = None) -> "DecodingConfig":
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


def sequence_bias_for(tokenizer, word_bias: dict[str, float]) -> list[list]:
    """Each word as token ids both with and without a leading space (``" great"`` is how a word
    usually follows another): ``[[ids, bias], ...]`` for transformers' ``SequenceBiasLogitsProcessor``,
    which adds the bias to the word's *last* token when the tokens before it were just generated."""
    seen, out = set(), []
    for word, bias in word_bias.items():
        for form in (" " + word.lstrip(), word):
            ids = tuple(tokenizer(form, add_special_tokens=False)["input_ids"])
            if ids and ids not in seen:
                seen.add(ids)
                out.append([list(ids), float(bias)])
    return out


# ---------------------------------------------------------------------- prompt
@dataclass
class Prompt:
    text: str  # after the chat template, if any
    ids: list[int]
    notices: list[str] = field(default_factory=list)


def check_prompt(prompt) -> str:
    """The prompt checks that need no tokenizer (run them before loading a model)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise DecodingError("the prompt is empty: type a few words for the model to continue")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise DecodingError(f"the prompt has {len(prompt)} characters; the playground takes at most {MAX_PROMPT_CHARS}")
    return prompt


def encode_prompt(tokenizer, prompt: str, cfg: DecodingConfig, context_length: int) -> Prompt:
    """Tokenize (optionally through the chat template); a prompt too long keeps its last tokens."""
    check_prompt(prompt)
    text = prompt
    if cfg.chat_template:
        if not getattr(tokenizer, "chat_template", None):
            raise DecodingError("this model's tokenizer has no chat template: untick 'chat template'")
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    notices = []
    budget = min(context_length - cfg.max_new_tokens, MAX_PROMPT_TOKENS)
    if budget < 1:
        raise DecodingError(f"max_new_tokens ({cfg.max_new_tokens}) leaves no room for a prompt in the model's context of {context_length} tokens")
    if len(ids) > budget:
        why = "the model's context" if budget < MAX_PROMPT_TOKENS else "the playground's prompt limit"
        notices.append(f"The prompt has {len(ids)} tokens; only its last {budget} were kept ({why}: "
                       f"{context_length} tokens of context, {cfg.max_new_tokens} reserved for the answer, at most {MAX_PROMPT_TOKENS} for the prompt).")
        ids = ids[-budget:]
        text = tokenizer.decode(ids)
    return Prompt(text, ids, notices)


# ---------------------------------------------------------------------- processors
def generation_config(cfg: DecodingConfig, tokenizer):
    """The ``GenerationConfig`` for ``cfg`` (sampling warpers only in sampling mode, as generate())."""
    from transformers import GenerationConfig

    kw = dict(max_new_tokens=cfg.max_new_tokens, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    if cfg.min_new_tokens:
        kw["min_new_tokens"] = cfg.min_new_tokens
    if cfg.repetition_penalty != 1.0:
        kw["repetition_penalty"] = cfg.repetition_penalty
    if cfg.no_repeat_ngram_size:
        kw["no_repeat_ngram_size"] = cfg.no_repeat_ngram_size
    if cfg.word_bias:
        kw["sequence_bias"] = sequence_bias_for(tokenizer, cfg.word_bias)
    if cfg.mode == "sample":
        kw.update(do_sample=True, temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p,
                  min_p=cfg.min_p or None, num_return_sequences=cfg.num_samples)
    elif cfg.mode == "beam":
        kw.update(do_sample=False, num_beams=cfg.num_beams, num_return_sequences=cfg.num_beams)
    else:
        kw.update(do_sample=False)
    return GenerationConfig(**kw)


def build_processors(model, gen_config, prompt_ids: torch.Tensor):
    """The ``LogitsProcessorList`` that ``model.generate(prompt_ids, generation_config=gen_config)``
    builds, in the order it applies them — built by transformers itself (same private steps as
    ``generate``: merge defaults → special tokens → ``_get_logits_processor``)."""
    from transformers import LogitsProcessorList

    gc, model_kwargs = model._prepare_generation_config(gen_config)
    model._prepare_special_tokens(gc, True, device=prompt_ids.device, batch_size=prompt_ids.shape[0])
    gc.max_length = prompt_ids.shape[1] + (gc.max_new_tokens or 0)
    return model._get_logits_processor(
        generation_config=gc, input_ids_seq_length=prompt_ids.shape[1], encoder_input_ids=prompt_ids,
        logits_processor=LogitsProcessorList(), device=prompt_ids.device,
        model_kwargs={"attention_mask": torch.ones_like(prompt_ids), **model_kwargs},
    )


def describe_processors(processors) -> list[str]:
    """``["RepetitionPenaltyLogitsProcessor(penalty=1.2)", "TemperatureLogitsWarper(temperature=0.7)", ...]``."""
    out = []
    for p in processors:
        args = {k: v for k, v in vars(p).items() if not k.startswith("_") and isinstance(v, (int, float))
                and not isinstance(v, bool) and k != "filter_value" and not (k == "min_tokens_to_keep" and v == 1)}
        if type(p).__name__ == "SequenceBiasLogitsProcessor":
            args = {"sequences": len(p.sequence_bias)}
        out.append(f"{type(p).__name__}({', '.join(f'{k}={v:g}' for k, v in args.items())})")
    return out


# ---------------------------------------------------------------------- results
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

    def to_dict(self) -> dict:
        """The CLI's ``--json`` schema (and a few extra fields)."""
        return {
            "model": self.model, "mode": self.mode, "prompt": self.prompt_text, "processors": self.processors,
            "notices": self.notices, "config": asdict(self.config), "seconds": round(self.seconds, 3),
            "sequences": [{"text": s.text, "cum_logprob": s.cum_logprob, "score": s.score, "finished": s.finished,
                           "steps": [asdict(st) for st in s.steps]} for s in self.sequences],
        }


def _step_tensors(out, mode: str, scores=None):
    """Per-sequence raw and processed logits ``[R, T, V]`` (beam search: follow ``beam_indices``).
    ``scores``: the processed logits per step when ``out.scores`` does not hold them (sampling)."""
    raw = torch.stack(out.logits, dim=1).float()  # [rows, T, V]
    proc = torch.stack((out.scores if scores is None else scores)[: raw.shape[1]], dim=1).float()  # [rows, T, V]
    if mode == "beam":
        idx = out.beam_indices[:, : raw.shape[1]].clamp(min=0)  # [R, T], −1 after a beam ended
        t = torch.arange(idx.shape[1])
        raw, proc = raw[idx, t], proc[idx, t]  # [R, T, V]
    return raw, proc


def summarize(tokenizer, raw: torch.Tensor, proc: torch.Tensor, chosen: torch.Tensor, lengths: list[int], top_n: int) -> list[list[Step]]:
    """Per-step numbers for ``R`` sequences from raw logits ``[R, T, V]``, processed logits
    ``[R, T, V]`` (−inf = filtered; overwritten with its softmax) and chosen ids ``[R, T]``.

    Few full-vocabulary buffers (each costs page faults on a small VM); only the reported candidates'
    numbers leave torch. ``H = −Σ_i p_i log p_i`` (not ``logsumexp(z) − Σ p z``: that cancels badly in float32)."""
    n = min(top_n, raw.shape[-1])
    raw_p = torch.softmax(raw, dim=-1)  # [R, T, V]
    entropy = torch.special.entr(raw_p).sum(-1)  # [R, T]; entr(p) = −p·log p (0 at p = 0)
    # softmax of the processed logits, in place (−inf, i.e. filtered, → 0): no new [R, T, V] buffer.
    proc_p = proc.sub_(proc.max(dim=-1, keepdim=True).values).exp_()
    proc_p.div_(proc_p.sum(dim=-1, keepdim=True))
    # Candidates: the top-n after processing, then (to fill up when fewer survive) the raw top-2n.
    cand = torch.cat([proc_p.topk(n, dim=-1).indices, raw.topk(min(2 * n, raw.shape[-1]), dim=-1).indices, chosen.unsqueeze(-1)], -1)
    c_raw, c_p = raw_p.gather(-1, cand), proc_p.gather(-1, cand)  # [R, T, 3n+1]
    cand, c_raw, c_p, ent = (x.cpu().numpy() for x in (cand, c_raw, c_p, entropy))
    names = dict(zip(*(lambda u: (u.tolist(), tokenizer.batch_decode([[int(i)] for i in u])))(np.unique(cand))))
    seqs = []
    for r, length in enumerate(lengths):
        steps = []
        for t in range(length):
            ids, rp, pp = cand[r, t], c_raw[r, t], c_p[r, t]
            kept = [j for j in range(n) if pp[j] > 0]  # processed top-n, most probable first
            seen = {int(ids[j]) for j in kept}
            for j in range(n, len(ids) - 1):  # then filtered tokens by raw probability
                if len(kept) >= n:
                    break
                if int(ids[j]) not in seen and pp[j] == 0:
                    kept.append(j)
                    seen.add(int(ids[j]))
            top = [Candidate(names[int(ids[j])], int(ids[j]), float(rp[j]), float(pp[j])) for j in kept]
            tid = int(ids[-1])
            steps.append(Step(names[tid], tid, float(pp[-1]), float(rp[-1]), float(ent[r, t]), top))
        seqs.append(steps)
    return seqs


def _eos_ids(model, tokenizer) -> set[int]:
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _run_generate(model, tokenizer, input_ids: torch.Tensor, gc, cfg: DecodingConfig):
    """``(out, processed scores per step or None)``. Greedy and beam search run as configured. Sampling
    is greedy search on ``cfg.num_samples`` copies of the prompt over ``generate()``'s own processors
    for them (warpers included) and a seeded :class:`InverseCDFSampler`, which keeps the scores it
    drew from (``out.scores`` holds its −inf output)."""
    from transformers import GenerationConfig, LogitsProcessorList

    if cfg.mode != "sample":
        gc.update(output_scores=True, output_logits=True, return_dict_in_generate=True)
        return model.generate(input_ids, attention_mask=torch.ones_like(input_ids), generation_config=gc), None
    draw = InverseCDFSampler(make_generator(cfg.seed, input_ids.device), keep_scores=True)
    rows = input_ids.repeat(cfg.num_samples, 1)  # [R, P]: what num_return_sequences does for one prompt
    run = GenerationConfig(max_new_tokens=cfg.max_new_tokens, pad_token_id=tokenizer.pad_token_id, eos_token_id=gc.eos_token_id,
                           do_sample=False, output_logits=True, return_dict_in_generate=True)
    built = build_processors(model, gc, rows)  # some hold per-row state (repetition penalty's prompt lengths)
    out = model.generate(rows, attention_mask=torch.ones_like(rows), generation_config=run,
                         logits_processor=LogitsProcessorList([*built, draw]))
    return out, draw.scores


@torch.no_grad()
def generate_from_ids(bundle, prompt_ids: list[int], cfg: DecodingConfig, top_n: int = 10, keep_logits: bool = False,
                      prompt_text: str | None = None, notices: list[str] | None = None) -> GenerationResult:
    """Run ``generate()`` once and return every step's raw/processed numbers. ``cfg`` must be validated."""
    model, tok = bundle.model, bundle.tokenizer
    input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=bundle.device)  # [1, P]
    gc = generation_config(cfg, tok)
    processors = describe_processors(build_processors(model, gc, input_ids))
    t0 = time.perf_counter()
    out, drawn = _run_generate(model, tok, input_ids, gc, cfg)
    seconds = time.perf_counter() - t0
    P = input_ids.shape[1]
    raw, proc = _step_tensors(out, cfg.mode, drawn)  # [R, T, V]
    gen = out.sequences[:, P: P + raw.shape[1]]  # [R, T]; beams may end before the search does
    raw, proc = raw[:, : gen.shape[1]], proc[:, : gen.shape[1]]
    eos = _eos_ids(model, tok)
    lengths, finished = [], []
    for row in gen.tolist():
        end = next((i for i, x in enumerate(row) if x in eos), None)
        lengths.append(len(row) if end is None else end + 1)
        finished.append(end is not None)
    # Beam search scores a beam by Σ processed log-probs (not renormalised): read them before
    # summarize() turns ``proc`` into probabilities in place.
    beam_logp = proc.gather(-1, gen.unsqueeze(-1))[..., 0] if cfg.mode == "beam" else None  # [R, T]
    steps = summarize(tok, raw, proc, gen, lengths, top_n)
    seqs = []
    for r, (st, n) in enumerate(zip(steps, lengths)):
        ids = gen[r, :n].tolist()
        if beam_logp is not None:
            cum = float(beam_logp[r, :n].sum())
            score = float(out.sequences_scores[r]) if getattr(out, "sequences_scores", None) is not None else None
        else:
            cum, score = sum(math.log(x.prob) for x in st), None  # chosen tokens always survive processing
        seqs.append(Sequence(tok.decode(ids, skip_special_tokens=True), ids, st, cum, score, finished[r]))
    kept = [raw[r, :n].cpu().numpy() for r, n in enumerate(lengths)] if keep_logits else None  # views, no copy
    return GenerationResult(bundle.name, cfg.mode, cfg, prompt_text if prompt_text is not None else tok.decode(prompt_ids),
                            list(prompt_ids), seqs, processors, list(notices or []), kept, seconds)


def generate(bundle, prompt: str, cfg: DecodingConfig, top_n: int = 10, keep_logits: bool = False) -> GenerationResult:
    """Validate ``cfg`` and ``prompt`` against the model, then :func:`generate_from_ids`."""
    cfg = cfg.validate(vocab_size=int(bundle.model.config.vocab_size))
    if not isinstance(top_n, int) or not 1 <= top_n <= 50:
        raise DecodingError("top candidates shown must be 1–50")
    p = encode_prompt(bundle.tokenizer, prompt, cfg, bundle.context_length)
    notices = list(p.notices)
    if cfg.mode == "greedy" and cfg.num_samples > 1:
        notices.append("Greedy decoding is deterministic: one sequence shown (use sampling to see several).")
    if cfg.strategy == "sample" and cfg.temperature == 0.0:
        notices.append("Temperature 0 means greedy decoding (always the most probable token).")
    return generate_from_ids(bundle, p.ids, cfg, top_n, keep_logits, p.text, notices)
