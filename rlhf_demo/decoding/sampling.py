"""Batched sampling of responses to token-id queries, and per-token log-probabilities of responses.

Shared by PPO rollouts, held-out evaluation, preference-pair synthesis and the KL tab, so all of
them sample and score in exactly the same way.

Queries of different lengths are **left-padded**; the forward passes use position ids computed from
the attention mask (``cumsum − 1``), exactly as ``generate`` does, so the log-probabilities scored
afterwards match those the sampler used.

The draw itself is ``InverseCDFSampler``: transformers' ``generate`` runs every processor and
warper (temperature, top-k, top-p, suppressed tokens) and then, instead of ``torch.multinomial``,
one uniform number per row picks the token where the cumulative distribution crosses it. For one draw
``torch.multinomial`` makes an exponential random number for **every** vocabulary entry (16 × 49 152
per step here), which took 19 ms of a ~180 ms sampling step on 2 CPU cores; the inverse CDF takes
about 2 ms and is an exact draw from the same distribution.

Every draw uses an explicit ``torch.Generator`` (nanoGPT / nanochat do the same), never the global
RNG: two sessions sampling at once in two threads keep their own streams, and a seeded call leaves
the global RNG state untouched.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Batch:
    """A left-padded batch of query + response token ids.

    input_ids:      [B, Q + R]  pad | query | response
    attention_mask: [B, Q + R]  0 on padding
    query_len:      Q (padded query width); responses start at column Q
    response_mask:  [B, R]      1 on real response tokens (0 after an early EOS, if allowed)
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    query_len: int
    response_mask: torch.Tensor
    logits: torch.Tensor | None = None
    """[B, R, V] raw logits of the generation forward (only with ``keep_outputs=True``)"""
    last_hidden: torch.Tensor | None = None
    """[B, R, H] last-layer hidden states that predicted each response token (``keep_outputs=True``)"""
    trunk: torch.Tensor | None = None
    """[B, Q + R − 1, H] hidden states entering decoder layer ``trunk_layer`` at every position but the
    last (``keep_outputs=True`` with ``trunk_layer``; see ``trunk.py``)"""

    @property
    def response_ids(self) -> torch.Tensor:  # [B, R]
        return self.input_ids[:, self.query_len :]


class InverseCDFSampler:
    """A last logits processor that draws the next token: P(token = v) = softmax(scores)[v].

    u ~ U[0, 1) per row; the token is the first v with CDF(v) = Σ_{w≤v} p(w) > u · CDF(V − 1) (float64
    sums; scaling by the total absorbs rounding). Tokens of probability 0 (masked to −inf by an earlier
    processor) are never drawn. It returns scores that are −inf everywhere but the drawn token, so
    ``generate`` in greedy mode (``do_sample=False``) takes exactly that token.

    ``generator``: one ``torch.Generator`` for every row (``None``: the global RNG), or a list with one
    per row. Consecutive rows that share one generator (the samples of one request) draw their numbers
    in a single call, as that request run alone does, so a request batched with others draws exactly
    what it draws alone.

    With ``keep_scores`` it also keeps each step's incoming scores (``self.scores``, one [B, V] per
    step): the processed distribution each row's token was drawn from, which ``generate``'s own
    ``out.scores`` no longer shows (it holds this processor's −inf output).
    """

    def __init__(self, generator: torch.Generator | list[torch.Generator | None] | None = None, keep_scores: bool = False):
        self.generator = generator
        self.scores: list[torch.Tensor] | None = [] if keep_scores else None
        self._runs = None  # [(generator, rows), ...]: runs of consecutive rows that share a generator
        if isinstance(generator, (list, tuple)):
            self._runs = [(run[0], len(run)) for run in (list(g) for _, g in itertools.groupby(generator, key=id))]

    def uniforms(self, rows: int, device) -> torch.Tensor:
        """u ~ U[0, 1) for ``rows`` rows: [rows, 1] float64."""
        if self._runs is None:
            return torch.rand(rows, 1, dtype=torch.float64, device=device, generator=self.generator)
        if sum(n for _, n in self._runs) != rows:
            raise ValueError(f"{sum(n for _, n in self._runs)} generators for a batch of {rows} rows")
        return torch.cat([torch.rand(n, 1, dtype=torch.float64, device=device, generator=g) for g, n in self._runs])

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:  # scores [B, V]
        if self.scores is not None:
            self.scores.append(scores)  # not modified afterwards: the output below is a new tensor
        cdf = torch.softmax(scores.double(), dim=-1).cumsum(dim=-1)  # [B, V]
        u = self.uniforms(scores.shape[0], scores.device) * cdf[:, -1:]  # [B, 1]
        token = torch.searchsorted(cdf, u, right=True).clamp_max(scores.shape[-1] - 1)  # [B, 1]
        return torch.full_like(scores, float("-inf")).scatter_(1, token, 0.0)


def make_generator(seed: int | None, device="cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``; ``None`` seeds it once from the
    global RNG (a fresh, unpredictable stream that no other thread can advance)."""
    if seed is None:
        seed = int(torch.randint(2**62, (1,)))
    return torch.Generator(device=torch.device(device)).manual_seed(int(seed))


def sampling_processors(temperature: float, top_k: int = 0, top_p: float = 1.0, generator: torch.Generator | None = None) -> list:
    """transformers' own warpers in ``generate``'s order, then the inverse-CDF draw from ``generator``."""
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    procs = []
    if temperature != 1.0:
        procs.append(TemperatureLogitsWarper(temperature))
    if top_k > 0:
        procs.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        procs.append(TopPLogitsWarper(top_p))
    return procs + [InverseCDFSampler(generator)]


def left_pad(queries: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id lists → (input_ids [B, Q], attention_mask [B, Q]), padded on the left."""
    width = max(len(q) for q in queries)
    ids = torch.full((len(queries), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(queries), width), dtype=torch.long)
    for i, q in enumerate(queries):
        ids[i, width - len(q) :] = torch.tensor(q, dtype=torch.long)
        mask[i, width - len(q) :] = 1
    return ids.to(device), mask.to(device)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted from the first real token of each row (as ``generate`` does)."""
    return (attention_mask.cumsum(-1) - 1).clamp_min(0)


class PerPrompt:
    """Runs a logits processor that reads the tokens themselves (n-gram ban, sequence bias) on each row
    **without its left padding**, so a padded row is processed exactly as the same prompt alone.
    Rows with the same padding go through in one call. (transformers' repetition penalty needs no
    help: built with the attention mask, it ignores the padding itself.)"""

    def __init__(self, processor, pad: list[int]):
        self.processor = processor
        self.groups = {w: torch.tensor([i for i, p in enumerate(pad) if p == w]) for w in sorted(set(pad))}

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:  # [B, L], [B, V]
        if len(self.groups) == 1:
            return self.processor(input_ids[:, next(iter(self.groups)) :], scores)
        out = torch.empty_like(scores)
        for w, rows in self.groups.items():
            out[rows] = self.processor(input_ids[rows, w:], scores[rows])
        return out


def padded_processors(processors, attention_mask: torch.Tensor) -> list:
    """``processors`` built for a left-padded batch, those that read the tokens wrapped in :class:`PerPrompt`."""
    from transformers import NoRepeatNGramLogitsProcessor, SequenceBiasLogitsProcessor

    pad = (attention_mask == 0).sum(-1).tolist()  # [B]
    reads_tokens = (NoRepeatNGramLogitsProcessor, SequenceBiasLogitsProcessor)
    return [PerPrompt(p, pad) if any(pad) and isinstance(p, reads_tokens) else p for p in processors]


def cache_settings(device: torch.device) -> dict:
    """How the playground's ``generate`` keeps its KV cache on ``device``: transformers' static cache on
    CUDA (a fixed-size cache, so transformers compiles the decoding step: batch-1 decoding of SmolLM2 on
    an H200 went from 46 to 244 tokens/s), the default dynamic cache on CPU (there the static cache
    measured no faster and compiling costs minutes on two cores: ``docs/experiments.md``)."""
    return {"cache_implementation": "static"} if device.type == "cuda" else {}


class _StopWhen:
    """A stopping criterion that ends every row once ``stop(tokens made so far)`` says so (``fired``)."""

    def __init__(self, stop, width: int):
        self.stop, self.width, self.fired = stop, width, False

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:  # [B] bool
        self.fired = self.fired or bool(self.stop(input_ids.shape[1] - self.width))
        return torch.full((input_ids.shape[0],), self.fired, dtype=torch.bool, device=input_ids.device)


@torch.no_grad()
def generate_rows(
    model, queries: list[list[int]], processors, generators: list | None, *, max_new_tokens: int, pad_token_id: int, eos_token_id, stop=None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """One ``model.generate`` over left-padded ``queries`` (one row each): ``(tokens [B, T], raw logits
    [B, T, V], processed logits [B, T, V])``, the processed ones being what each row's token was
    chosen from.

    ``processors(input_ids [B, Q], attention_mask [B, Q])``: the ``LogitsProcessorList`` for the padded
    batch (built by transformers for them: min-new-tokens counts from the padded width, where every
    row's answer starts). Those that read the tokens run per row without the padding (:class:`PerPrompt`).
    ``generators``: one ``torch.Generator`` per row for sampling (:class:`InverseCDFSampler`); ``None``
    for greedy decoding (the argmax of the processed scores, which ``out.scores`` then holds).
    Positions count from each row's first real token (``generate`` derives them from the mask).
    ``stop(tokens made)``, asked after every step: True abandons the generation (returns ``None``)."""
    from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

    device = next(model.parameters()).device
    ids, mask = left_pad(queries, pad_token_id, device)  # [B, Q]
    procs = padded_processors(processors(ids, mask), mask)
    draw = InverseCDFSampler(generators, keep_scores=True) if generators is not None else None
    halt = _StopWhen(stop, ids.shape[1]) if stop is not None else None
    run = GenerationConfig(
        max_new_tokens=max_new_tokens,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
        do_sample=False,
        output_logits=True,
        output_scores=draw is None,
        return_dict_in_generate=True,
        **cache_settings(device),
    )
    out = model.generate(
        ids,
        attention_mask=mask,
        generation_config=run,
        logits_processor=LogitsProcessorList(procs + ([draw] if draw is not None else [])),
        stopping_criteria=StoppingCriteriaList([halt] if halt is not None else []),
    )
    if halt is not None and halt.fired:
        return None
    tokens, logits, scores = out.sequences[:, ids.shape[1] :], list(out.logits), out.scores if draw is None else draw.scores
    del out, draw  # each step's [B, V] tensors are stacked into one below: drop the lists as they are copied
    raw = torch.stack(logits, dim=1).float()  # [B, T, V]
    del logits
    proc = torch.stack(scores[: raw.shape[1]], dim=1).float()  # [B, T, V]
    return tokens, raw, proc  # tokens [B, T]


@torch.no_grad()
def sample_responses(
    model,
    tokenizer,
    queries: list[list[int]],
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    ban_special_tokens: bool = True,
    keep_outputs: bool = False,
    trunk_layer: int | None = None,
) -> Batch:
    """Sample one response per query with ``model.generate``.

    Draws come from ``generator``, else from a new one seeded with ``seed`` (``None``: seeded once
    from the global RNG); the global RNG itself is never seeded. Temperature 0 is greedy (no draw).

    With ``ban_special_tokens`` (default, as in the course's PPO setup) EOS and other special tokens
    are suppressed, so every response has exactly ``max_new_tokens`` tokens.

    With ``keep_outputs`` the batch also carries the generation forward's raw logits and last hidden
    states per response token (PPO takes its old log-probs and values from them: no second forward),
    and with ``trunk_layer`` also the hidden states entering that decoder layer (``Batch.trunk``).
    """
    device = next(model.parameters()).device
    ids, mask = left_pad(queries, tokenizer.pad_token_id, device)
    kwargs = dict(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    if temperature > 0:  # greedy search over the scores of a sampler = sampling (see InverseCDFSampler)
        from transformers import LogitsProcessorList

        rng = generator if generator is not None else make_generator(seed, device)
        kwargs.update(logits_processor=LogitsProcessorList(sampling_processors(temperature, top_k, top_p, rng)))
    if ban_special_tokens:
        kwargs.update(min_new_tokens=max_new_tokens, suppress_tokens=list(tokenizer.all_special_ids))
    if keep_outputs:
        kwargs.update(output_logits=True, output_hidden_states=True, return_dict_in_generate=True)
    gen = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
    out = gen.sequences if keep_outputs else gen  # [B, Q + R]
    resp = out[:, ids.shape[1] :]
    resp_mask = torch.ones_like(resp)
    if not ban_special_tokens and tokenizer.eos_token_id is not None:
        # everything after the first EOS is padding
        is_eos = (resp == tokenizer.eos_token_id).long()
        after = (is_eos.cumsum(-1) - is_eos) > 0
        resp_mask = (~after).long()
    full_mask = torch.cat([mask, resp_mask], dim=1)
    if keep_outputs:
        logits = torch.stack(gen.logits, dim=1)  # [B, R, V]
        # step 0 sees the whole query (keep its last position), later steps one new token each
        hidden = torch.cat([gen.hidden_states[0][-1][:, -1:]] + [h[-1] for h in gen.hidden_states[1:]], dim=1)
        trunk = None
        if trunk_layer is not None:  # every position fed to the model: the query, then R − 1 sampled tokens
            trunk = torch.cat([gen.hidden_states[0][trunk_layer]] + [h[trunk_layer] for h in gen.hidden_states[1:]], dim=1)
        return Batch(out, full_mask, ids.shape[1], resp_mask, logits, hidden, trunk)  # hidden [B, R, H]
    return Batch(out, full_mask, ids.shape[1], resp_mask)


def response_logits(model, batch: Batch) -> torch.Tensor:
    """Logits that predict each response token: [B, R, V] (with grad if enabled)."""
    out = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=position_ids(batch.attention_mask),
        use_cache=False,
    )
    q = batch.query_len
    return out.logits[:, q - 1 : -1, :]  # position t predicts token t+1


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[token]: logits [B, R, V], tokens [B, R] → [B, R]."""
    return torch.gather(F.log_softmax(logits.float(), dim=-1), 2, tokens.unsqueeze(-1)).squeeze(-1)


def decode_responses(tokenizer, batch: Batch) -> list[str]:
    texts = []
    for ids, m in zip(batch.response_ids, batch.response_mask):
        texts.append(tokenizer.decode(ids[m.bool()], skip_special_tokens=True))
    return texts


def decode_queries(tokenizer, batch: Batch) -> list[str]:
    q = batch.query_len
    return [tokenizer.decode(ids[:q][m[:q].bool()], skip_special_tokens=True) for ids, m in zip(batch.input_ids, batch.attention_mask)]
