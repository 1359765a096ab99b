"""Exploring a finished generation: re-process a step for new knobs, branch, see a word bias at work.

Everything works from a :class:`~rlhf_demo.decoding.GenerationResult` made with ``keep_logits=True``
(raw logits ``z_t`` of every step, as numpy), or one whose logits a server keeps in its one
:class:`~rlhf_demo.decoding.kept.LogitStore` (``store.attach(bundle, result)`` reads them back). Re-processing a step runs transformers' own
``LogitsProcessorList`` (built by :func:`~rlhf_demo.decoding.build_processors`) on the stored
``z_t`` with that step's prefix — the same call ``generate()`` makes — so the bars for a new
temperature / top-k / top-p are exactly what ``generate()`` would sample from, without generating::

    probs_t(cfg') = softmax( LogitsProcessorList(cfg')(prefix_t, z_t) )

Beam search processes log-probabilities (``log_softmax(z_t)``) rather than logits, as ``_beam_search``
does; its sampling warpers are never applied (``do_sample=False``).

Branching at step i keeps the first i tokens, forces a chosen candidate (or a typed word's tokens)
and lets the decoder continue with the same settings and the remaining token budget.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from rlhf_demo.decoding.generate import (
    DecodingConfig,
    DecodingError,
    GenerationResult,
    Sequence,
    build_processors,
    generate_from_ids,
    generation_config,
    sequence_bias_for,
    summarize,
)


def _check(result: GenerationResult, seq_index, step) -> Sequence:
    if result is None or result.raw_logits is None:
        raise DecodingError("generate first: there is no stored generation to explore")
    if (
        isinstance(seq_index, bool)
        or not isinstance(seq_index, (int, float))
        or int(seq_index) != seq_index
        or not 0 <= seq_index < len(result.sequences)
    ):
        raise DecodingError(f"sequence {seq_index!r} does not exist (there are {len(result.sequences)})")
    seq = result.sequences[int(seq_index)]
    if isinstance(step, bool) or not isinstance(step, (int, float)) or int(step) != step or not 0 <= step < len(seq.steps):
        raise DecodingError(f"step {step!r} does not exist (this sequence has steps 0–{len(seq.steps) - 1})")
    return seq


def _process(bundle, cfg: DecodingConfig, prompt_ids: list[int], prefix: list[int], raw: torch.Tensor, processors=None) -> torch.Tensor:
    """Processed logits ``[V]`` of one step: transformers' processors for ``cfg`` on raw logits ``[V]``."""
    dev = bundle.device
    if processors is None:
        processors = build_processors(bundle.model, generation_config(cfg, bundle.tokenizer), torch.tensor([prompt_ids], device=dev))
    x = raw.float().to(dev)[None]  # [1, V]
    if cfg.mode == "beam":
        x = torch.log_softmax(x, dim=-1)
    return processors(torch.tensor([prefix], device=dev), x.clone())[0]


def reprocess(bundle, result: GenerationResult, seq_index: int, step: int, cfg: DecodingConfig | None = None):
    """``(raw_probs [V], probs [V])`` of one stored step under ``cfg`` (default: the generation's own)."""
    seq = _check(result, seq_index, step)
    cfg = (cfg or result.config).validate(vocab_size=int(bundle.model.config.vocab_size))
    raw = torch.from_numpy(np.asarray(result.raw_logits[int(seq_index)][int(step)], dtype=np.float32))  # [V]
    prefix = result.prompt_ids + seq.token_ids[: int(step)]
    with torch.no_grad():
        proc = _process(bundle, cfg, result.prompt_ids, prefix, raw)
    return torch.softmax(raw, -1).numpy(), torch.softmax(proc, -1).cpu().numpy()


def candidate_frame(tokenizer, raw_probs: np.ndarray, probs: np.ndarray, chosen_id: int | None, n: int = 10) -> pd.DataFrame:
    """The bars of one step: the top-n by raw probability ∪ the top-n after processing (∪ the chosen
    token), most probable first. Columns: ``rank token token_id raw_prob prob kept chosen``."""
    top_kept = [i for i in np.argsort(-probs)[:n].tolist() if probs[i] > 0]  # ties at 0 would be arbitrary tokens
    ids = set(np.argsort(-raw_probs)[:n].tolist()) | set(top_kept)
    if chosen_id is not None:
        ids.add(int(chosen_id))
    ids = sorted(ids, key=lambda i: -max(raw_probs[i], probs[i]))
    names = tokenizer.batch_decode([[i] for i in ids])
    rows = [
        {
            "rank": r + 1,
            "token": t,
            "token_id": int(i),
            "raw_prob": float(raw_probs[i]),
            "prob": float(probs[i]),
            "kept": bool(probs[i] > 0),
            "chosen": chosen_id is not None and int(i) == int(chosen_id),
        }
        for r, (i, t) in enumerate(zip(ids, names))
    ]
    return pd.DataFrame(rows, columns=["rank", "token", "token_id", "raw_prob", "prob", "kept", "chosen"])


def steps_frame(seq: Sequence) -> pd.DataFrame:
    """One row per step: ``step token token_id prob raw_prob entropy forced``."""
    return pd.DataFrame(
        [
            {
                "step": i,
                "token": s.token,
                "token_id": s.token_id,
                "prob": s.prob,
                "raw_prob": s.raw_prob,
                "entropy": s.entropy,
                "forced": s.forced,
            }
            for i, s in enumerate(seq.steps)
        ],
        columns=["step", "token", "token_id", "prob", "raw_prob", "entropy", "forced"],
    )


def sequences_frame(result: GenerationResult) -> pd.DataFrame:
    """One row per returned sequence (beams: cumulative and length-normalised log-probabilities)."""
    return pd.DataFrame(
        [
            {
                "#": i + 1,
                "text": s.text,
                "tokens": len(s.token_ids),
                "cum_logprob": round(s.cum_logprob, 3),
                "score": None if s.score is None else round(s.score, 3),
                "ended": s.finished,
            }
            for i, s in enumerate(result.sequences)
        ]
    )


def bias_frame(bundle, result: GenerationResult, seq_index: int, step: int, cfg: DecodingConfig | None = None) -> pd.DataFrame:
    """For each biased word form: its (last) token's probability before the bias (raw softmax), after
    the bias alone (transformers' ``SequenceBiasLogitsProcessor``), and after every processor.
    A multi-token form only applies once its earlier tokens were just generated (``applies``)."""
    seq = _check(result, seq_index, step)
    cfg = (cfg or result.config).validate(vocab_size=int(bundle.model.config.vocab_size))
    cols = ["word", "form", "token", "bias", "before", "after_bias", "final", "applies"]
    if not cfg.word_bias:
        return pd.DataFrame(columns=cols)
    tok = bundle.tokenizer
    raw = torch.from_numpy(np.asarray(result.raw_logits[int(seq_index)][int(step)], dtype=np.float32))
    prefix = result.prompt_ids + seq.token_ids[: int(step)]
    only_bias = DecodingConfig(strategy="greedy", word_bias=cfg.word_bias, max_new_tokens=cfg.max_new_tokens)
    with torch.no_grad():
        before = torch.softmax(raw, -1)
        after_bias = torch.softmax(_process(bundle, only_bias, result.prompt_ids, prefix, raw), -1).cpu()
        final = torch.softmax(_process(bundle, cfg, result.prompt_ids, prefix, raw), -1).cpu()
    rows = []
    for word, b in cfg.word_bias.items():
        for ids, bias in sequence_bias_for(tok, {word: b}):
            last, head = ids[-1], ids[:-1]
            applies = not head or prefix[-len(head) :] == head
            rows.append(
                {
                    "word": word,
                    "form": tok.decode(ids),
                    "token": tok.decode([last]),
                    "bias": bias,
                    "before": float(before[last]),
                    "after_bias": float(after_bias[last]),
                    "final": float(final[last]),
                    "applies": applies,
                }
            )
    return pd.DataFrame(rows, columns=cols)


def _word_ids(tokenizer, word: str, prefix: list[int]) -> list[int]:
    if not isinstance(word, str) or not word.strip() or len(word) > 50:
        raise DecodingError("type a word of 1–50 characters to branch with")
    text = word
    if word[0].isalnum() and prefix and not tokenizer.decode(prefix[-1:])[-1:].isspace():
        text = " " + word  # a new word after a word: " great", not "great"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) > 16:
        raise DecodingError(f"{word!r} is {len(ids)} tokens; branch with at most 16")
    return list(ids)


@torch.no_grad()
def branch(
    bundle, result: GenerationResult, seq_index: int, step: int, token_id: int | None = None, word: str | None = None, top_n: int = 10
) -> GenerationResult:
    """Keep tokens ``0..step-1`` of a sequence, force ``token_id`` (or the tokens of ``word``) at
    ``step``, and let the decoder continue with the same settings and the tokens left in the budget."""
    seq = _check(result, seq_index, step)
    tok, model, cfg, step = bundle.tokenizer, bundle.model, result.config, int(step)
    vocab = int(model.config.vocab_size)
    prefix = result.prompt_ids + seq.token_ids[:step]
    if word is not None and str(word).strip():
        forced = _word_ids(tok, str(word), prefix)
    elif token_id is not None:
        if isinstance(token_id, bool) or not isinstance(token_id, (int, float)) or int(token_id) != token_id or not 0 <= token_id < vocab:
            raise DecodingError(f"token id {token_id!r} is not in the vocabulary (0–{vocab - 1})")
        forced = [int(token_id)]
    else:
        raise DecodingError("pick a candidate token or type a word to branch with")

    # 1. The forced tokens' own numbers: one forward pass over prefix + forced.
    ids = torch.tensor([prefix + forced], device=bundle.device)  # [1, L]
    logits = model(ids, logits_to_keep=len(forced) + 1).logits[0, :-1].float()  # [F, V] predicting each forced token
    procs = build_processors(model, generation_config(cfg, tok), torch.tensor([result.prompt_ids], device=bundle.device))
    proc = torch.stack([_process(bundle, cfg, result.prompt_ids, prefix + forced[:j], logits[j], procs) for j in range(len(forced))])
    forced_steps = summarize(tok, logits[None], proc[None], torch.tensor([forced], device=bundle.device), [len(forced)], top_n)[0]
    for s in forced_steps:
        s.forced = True

    # 2. Continue decoding from there with the remaining budget.
    used = step + len(forced)
    left = cfg.max_new_tokens - used
    eos = tok.eos_token_id
    cont_steps, cont_ids, cont_logits, finished, notices = [], [], [], forced[-1] == eos, []
    if left > 0 and not finished:
        cfg2 = replace(cfg, max_new_tokens=left, min_new_tokens=max(0, cfg.min_new_tokens - used), num_samples=1)
        cont = generate_from_ids(bundle, prefix + forced, cfg2, top_n, keep_logits=True)
        best = cont.sequences[0]
        cont_steps, cont_ids, cont_logits, finished = best.steps, best.token_ids, [cont.raw_logits[0]], best.finished
    elif left <= 0:
        notices.append("The token budget was used up at the branch point: raise max new tokens to continue further.")
    token_ids = seq.token_ids[:step] + forced + cont_ids
    steps = seq.steps[:step] + forced_steps + cont_steps
    cum = sum(math.log(s.prob) if s.prob > 0 else -math.inf for s in steps)
    kept = [result.raw_logits[int(seq_index)][:step], logits.cpu().numpy(), *cont_logits]
    what = repr(tok.decode(forced))
    notices.insert(0, f"Branch at step {step}: forced {what} (the model gave it {forced_steps[0].raw_prob:.2%}) and continued.")
    new = Sequence(tok.decode(token_ids, skip_special_tokens=True), token_ids, steps, cum, None, finished)
    return GenerationResult(
        result.model,
        result.mode,
        cfg,
        result.prompt_text,
        result.prompt_ids,
        [new],
        result.processors,
        notices,
        [np.concatenate(kept, axis=0)],
    )
