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

Sampling and greedy decoding run through :func:`run_rows`, which decodes several prompts in one
``generate()`` (left-padded, one generator per prompt): ``batch.py`` groups requests of different
users into it, and a prompt gets the same tokens alone or batched. The knobs are in ``config.py``.
The ``best-of-n`` strategy samples as ``sample`` does; its N sequences are then scored by the config's
``reward`` and shown best first (``best_of_n.rank``).

What is simplified here: beam search runs one prompt at a time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from rlhf_demo.decoding.config import (
    BEST_OF_N,
    MAX_PROMPT_CHARS,
    MAX_PROMPT_TOKENS,
    DecodingConfig,
    DecodingError,
    parse_word_bias,  # noqa: F401 (the UI, the CLI and tests import it from here)
)
from rlhf_demo.decoding.result import Candidate, GenerationResult, Sequence, Step  # noqa: F401 (imported from here too)
from rlhf_demo.decoding.sampling import generate_rows, make_generator


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
        raise DecodingError(
            f"max_new_tokens ({cfg.max_new_tokens}) leaves no room for a prompt in the model's context of {context_length} tokens"
        )
    if len(ids) > budget:
        why = "the model's context" if budget < MAX_PROMPT_TOKENS else "the playground's prompt limit"
        notices.append(
            f"The prompt has {len(ids)} tokens; only its last {budget} were kept ({why}: "
            f"{context_length} tokens of context, {cfg.max_new_tokens} reserved for the answer, at most {MAX_PROMPT_TOKENS} for the prompt)."
        )
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
        kw.update(
            do_sample=True,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            top_p=cfg.top_p,
            min_p=cfg.min_p or None,
            num_return_sequences=cfg.num_samples,
        )
    elif cfg.mode == "beam":
        kw.update(do_sample=False, num_beams=cfg.num_beams, num_return_sequences=cfg.num_beams)
    else:
        kw.update(do_sample=False)
    return GenerationConfig(**kw)


def build_processors(model, gen_config, prompt_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
    """The ``LogitsProcessorList`` that ``model.generate(prompt_ids, attention_mask=attention_mask,
    generation_config=gen_config)`` builds, in the order it applies them — built by transformers itself
    (same private steps as ``generate``: merge defaults → special tokens → ``_get_logits_processor``).
    The mask (default: no padding) tells the repetition penalty which left padding to ignore."""
    from transformers import LogitsProcessorList

    gc, model_kwargs = model._prepare_generation_config(gen_config)
    model._prepare_special_tokens(gc, True, device=prompt_ids.device, batch_size=prompt_ids.shape[0])
    gc.max_length = prompt_ids.shape[1] + (gc.max_new_tokens or 0)
    mask = torch.ones_like(prompt_ids) if attention_mask is None else attention_mask
    return model._get_logits_processor(
        generation_config=gc,
        input_ids_seq_length=prompt_ids.shape[1],
        encoder_input_ids=prompt_ids,
        logits_processor=LogitsProcessorList(),
        device=prompt_ids.device,
        model_kwargs={"attention_mask": mask, **model_kwargs},
    )


def describe_processors(processors) -> list[str]:
    """``["RepetitionPenaltyLogitsProcessor(penalty=1.2)", "TemperatureLogitsWarper(temperature=0.7)", ...]``."""
    out = []
    for p in processors:
        args = {
            k: v
            for k, v in vars(p).items()
            if not k.startswith("_")
            and isinstance(v, (int, float))
            and not isinstance(v, bool)
            and k != "filter_value"
            and not (k == "min_tokens_to_keep" and v == 1)
        }
        if type(p).__name__ == "SequenceBiasLogitsProcessor":
            args = {"sequences": len(p.sequence_bias)}
        out.append(f"{type(p).__name__}({', '.join(f'{k}={v:g}' for k, v in args.items())})")
    return out


def _beam_tensors(out):
    """Per-beam raw and processed logits ``[R, T, V]`` of a beam search, following ``beam_indices``."""
    raw = torch.stack(out.logits, dim=1).float()  # [rows, T, V]
    proc = torch.stack(out.scores[: raw.shape[1]], dim=1).float()  # [rows, T, V]
    idx = out.beam_indices[:, : raw.shape[1]].clamp(min=0)  # [R, T], −1 after a beam ended
    t = torch.arange(idx.shape[1])
    return raw[idx, t], proc[idx, t]  # [R, T, V]


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


def run_rows(
    bundle, requests: list[tuple[list[int], DecodingConfig]], stop=None
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None:
    """Sampling or greedy decoding of several prompts in ONE ``model.generate`` (their settings equal
    but for ``seed`` and ``num_samples``; see ``batch.batch_key``): per prompt ``(tokens [R, T], raw
    logits [R, T, V], processed logits [R, T, V])`` for its ``R = cfg.num_sequences`` rows.

    Sampling is greedy search over ``generate()``'s own processors for these settings (warpers
    included) and an :class:`InverseCDFSampler` with one generator per prompt, seeded with its
    ``cfg.seed``, which keeps the scores each row drew from (``out.scores`` holds its −inf output).
    A prompt gets the same tokens alone or batched (``sampling.generate_rows`` left-pads). ``stop``: see
    ``generate_rows`` (``None`` back: abandoned; running it again gives the same tokens)."""
    model, tok, cfg = bundle.model, bundle.tokenizer, requests[0][1]
    gc = generation_config(cfg, tok)
    queries, generators, spans = [], [], []
    for ids, c in requests:
        n = c.num_sequences  # rows: what num_return_sequences does for one prompt
        spans.append(slice(len(queries), len(queries) + n))
        queries += [list(ids)] * n
        generators += [make_generator(c.seed, bundle.device)] * n  # one stream per prompt, shared by its rows
    out = generate_rows(
        model,
        queries,
        lambda ids, mask: build_processors(model, gc, ids, mask),
        generators if cfg.mode == "sample" else None,
        max_new_tokens=cfg.max_new_tokens,
        pad_token_id=tok.pad_token_id,
        eos_token_id=gc.eos_token_id,
        stop=stop,
    )
    if out is None:
        return None
    tokens, raw, proc = out
    return [(tokens[s], raw[s], proc[s]) for s in spans]


def result_from_rows(
    bundle,
    prompt_ids: list[int],
    cfg: DecodingConfig,
    gen: torch.Tensor,
    raw: torch.Tensor,
    proc: torch.Tensor,
    top_n: int = 10,
    keep_logits: bool = False,
    prompt_text: str | None = None,
    notices: list[str] | None = None,
    seconds: float = 0.0,
    batch: int = 1,
    sequences_scores=None,
) -> GenerationResult:
    """Every step's numbers from one prompt's rows: tokens ``gen [R, T]``, raw and processed logits
    ``[R, T, V]`` (``proc`` is overwritten with its softmax)."""
    tok = bundle.tokenizer
    processors = describe_processors(
        build_processors(bundle.model, generation_config(cfg, tok), torch.tensor([prompt_ids], dtype=torch.long, device=bundle.device))
    )
    eos = _eos_ids(bundle.model, tok)
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
            score = float(sequences_scores[r]) if sequences_scores is not None else None
        else:
            cum, score = sum(math.log(x.prob) for x in st), None  # chosen tokens always survive processing
        seqs.append(Sequence(tok.decode(ids, skip_special_tokens=True), ids, st, cum, score, finished[r]))
    kept = [raw[r, :n].cpu().numpy() for r, n in enumerate(lengths)] if keep_logits else None  # views, no copy
    result = GenerationResult(
        bundle.name,
        cfg.mode,
        cfg,
        prompt_text if prompt_text is not None else tok.decode(prompt_ids),
        list(prompt_ids),
        seqs,
        processors,
        list(notices or []),
        kept,
        seconds,
        batch,
    )
    if cfg.strategy == BEST_OF_N:  # the N samples scored by a reward, best first (best_of_n.py)
        from rlhf_demo.decoding.best_of_n import rank, reward_for

        result, _ = rank(result, reward_for(cfg.reward))
    return result


@torch.no_grad()
def generate_from_ids(
    bundle,
    prompt_ids: list[int],
    cfg: DecodingConfig,
    top_n: int = 10,
    keep_logits: bool = False,
    prompt_text: str | None = None,
    notices: list[str] | None = None,
) -> GenerationResult:
    """Run ``generate()`` once and return every step's raw/processed numbers. ``cfg`` must be validated."""
    t0, scores = time.perf_counter(), None
    if cfg.mode == "beam":  # beam search as configured; its processed scores are out.scores
        ids = torch.tensor([prompt_ids], dtype=torch.long, device=bundle.device)  # [1, P]
        gc = generation_config(cfg, bundle.tokenizer)
        gc.update(output_scores=True, output_logits=True, return_dict_in_generate=True)
        out = bundle.model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=gc)
        raw, proc = _beam_tensors(out)  # [R, T, V]
        gen, scores = out.sequences[:, ids.shape[1] : ids.shape[1] + raw.shape[1]], getattr(out, "sequences_scores", None)
        raw, proc = raw[:, : gen.shape[1]], proc[:, : gen.shape[1]]  # beams may end before the search does
    else:
        ((gen, raw, proc),) = run_rows(bundle, [(prompt_ids, cfg)])
    return result_from_rows(
        bundle, prompt_ids, cfg, gen, raw, proc, top_n, keep_logits, prompt_text, notices, time.perf_counter() - t0, 1, scores
    )


def prepare(bundle, prompt: str, cfg: DecodingConfig, top_n: int = 10) -> tuple[DecodingConfig, Prompt]:
    """Validate ``cfg``, ``top_n`` and ``prompt`` against the model: the clean config and the encoded
    prompt, whose notices say what was changed or means something else than it seems."""
    cfg = cfg.validate(vocab_size=int(bundle.model.config.vocab_size))
    if not isinstance(top_n, int) or not 1 <= top_n <= 50:
        raise DecodingError("top candidates shown must be 1–50")
    p = encode_prompt(bundle.tokenizer, prompt, cfg, bundle.context_length)
    if cfg.mode == "greedy" and cfg.num_samples > 1:
        p.notices.append("Greedy decoding is deterministic: one sequence shown (use sampling to see several).")
    if cfg.strategy == "sample" and cfg.temperature == 0.0:
        p.notices.append("Temperature 0 means greedy decoding (always the most probable token).")
    if cfg.strategy == BEST_OF_N:  # build its reward now: an unknown name or a missing file fails before the model runs
        from rlhf_demo.decoding.best_of_n import reward_for

        reward_for(cfg.reward)
    return cfg, p


def generate(bundle, prompt: str, cfg: DecodingConfig, top_n: int = 10, keep_logits: bool = False) -> GenerationResult:
    """:func:`prepare` ``cfg`` and ``prompt``, then :func:`generate_from_ids`."""
    cfg, p = prepare(bundle, prompt, cfg, top_n)
    return generate_from_ids(bundle, p.ids, cfg, top_n, keep_logits, p.text, p.notices)
