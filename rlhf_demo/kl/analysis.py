"""KL between a policy π and a reference π_ref on real text, token by token.

What the KL tab's first panel and ``python -m rlhf_demo kl`` show; the estimators are in
``kl.estimators``, the estimator lab (many samples, bias and spread of k1/k2/k3) in ``kl.lab``.

**Per-token analysis** (``token_kl``): for a prompt x and a response y = y_1 … y_R, at each position t

    logp_policy = log π(y_t | x, y<t)          logp_ref = log π_ref(y_t | x, y<t)
    log_ratio   = logp_policy − logp_ref       (= k1)
    k2 = ½·log_ratio²,  k3 = expm1(−log_ratio) + log_ratio
    kl_exact    = Σ_v π(v | x, y<t) · (log π(v | ·) − log π_ref(v | ·))   over the whole vocabulary

and the sequence totals are sums over t. k1, k2, k3 are Schulman's estimators of kl_exact from the
one sampled token y_t ("Approximating KL Divergence", http://joschu.net/blog/kl-approx.html); only
when y was *sampled from π* are k1 and k3 unbiased for it. A typed-in response is just a text: the
estimators are still defined, but only kl_exact means "KL at this position".

A "policy temperature" T ≠ 1 makes π = softmax(logits/T): with the base model as both policy and
reference this gives a non-zero, exactly known KL without any trained model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F

from rlhf_demo.decoding.sampling import Batch, left_pad, make_generator, response_logits, sample_responses
from rlhf_demo.kl.estimators import ESTIMATORS, exact_kl

MAX_RESPONSE_TOKENS = 64
"""Longest response analysed or generated (2 forwards of the real model over it per request)."""
MAX_PROMPT_CHARS = 2000
ESTIMATOR_NAMES = ("k1", "k2", "k3")


class KLInputError(ValueError):
    """Bad input to a KL analysis (empty response, different tokenizers, limits): a clear message."""


# --------------------------------------------------------------------------------------------------
# checks


def check_same_tokenizer(policy_tok, reference_tok) -> None:
    """Raise KLInputError unless both tokenizers map the same strings to the same ids.

    Per-token KL compares π(v) with π_ref(v) for the same token v: that only means something when
    token id v is the same string in both vocabularies.
    """
    if policy_tok is reference_tok:
        return
    if len(policy_tok) != len(reference_tok):
        raise KLInputError(
            f"policy and reference use different tokenizers ({len(policy_tok)} vs {len(reference_tok)} tokens): "
            "per-token KL needs the same vocabulary; pick a reference the policy was trained from"
        )
    if policy_tok.get_vocab() != reference_tok.get_vocab():
        raise KLInputError(
            "policy and reference use different tokenizers (same size, but the token ids differ): "
            "per-token KL needs the same vocabulary; pick a reference the policy was trained from"
        )


def check_vocab_size(logits_policy: torch.Tensor, logits_ref: torch.Tensor) -> None:
    if logits_policy.shape[-1] != logits_ref.shape[-1]:
        raise KLInputError(
            f"policy and reference output different vocabulary sizes ({logits_policy.shape[-1]} vs "
            f"{logits_ref.shape[-1]}): they are not the same model family"
        )


def check_temperature(t: float) -> float:
    """The policy temperature T of π = softmax(logits / T) as a float; anything but a positive finite
    number is a KLInputError."""
    if not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
        raise KLInputError(f"policy temperature must be a positive number, got {t!r}")
    return float(t)


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    if not isinstance(prompt, str) or not prompt.strip():
        raise KLInputError("the prompt is empty: type the text the response continues")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise KLInputError(f"the prompt is {len(prompt)} characters long; the limit is {MAX_PROMPT_CHARS}")
    return tokenizer(prompt, add_special_tokens=False).input_ids


def encode_response(tokenizer, response: str) -> list[int]:
    """Response token ids, tokenized on their own (as a sampler would have produced them)."""
    if not isinstance(response, str) or response == "":
        raise KLInputError("the response is empty: type one, or leave it out to let the policy write one")
    ids = tokenizer(response, add_special_tokens=False).input_ids
    if not ids:
        raise KLInputError("the response has no tokens")
    if len(ids) > MAX_RESPONSE_TOKENS:
        raise KLInputError(f"the response has {len(ids)} tokens; the limit is {MAX_RESPONSE_TOKENS}")
    return ids


# --------------------------------------------------------------------------------------------------
# shared scoring


@torch.no_grad()
def logprobs_pair(policy, reference, batch: Batch, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """log π and log π_ref over the vocabulary at every response position: two [B, R, V] tensors, with
    π = softmax(policy logits / T) and π_ref = softmax(reference logits) (the KL tab and ``kl.lab``)."""
    logits = response_logits(policy.model, batch).float()  # [B, R, V]
    ref_batch = batch if reference.device == policy.device else _to(batch, reference.device)
    logits_ref = response_logits(reference.model, ref_batch).float().to(logits.device)  # [B, R, V]
    check_vocab_size(logits, logits_ref)
    return F.log_softmax(logits / temperature, -1), F.log_softmax(logits_ref, -1)


def _to(batch: Batch, device) -> Batch:
    return Batch(batch.input_ids.to(device), batch.attention_mask.to(device), batch.query_len, batch.response_mask.to(device))


def per_position(logp: torch.Tensor, logp_ref: torch.Tensor, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-position quantities for tokens [B, R] under logp, logp_ref [B, R, V]: each [B, R]."""
    lp = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)  # [B, R]
    lp_ref = logp_ref.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)  # [B, R]
    logr = lp - lp_ref  # [B, R]
    out = {"logp_policy": lp, "logp_ref": lp_ref, "log_ratio": logr, "kl_exact": exact_kl(logp, logp_ref)}
    out.update({name: fn(logr) for name, fn in ESTIMATORS.items()})
    return out


def _decode_token(tokenizer, tid: int) -> str:
    return tokenizer.decode([tid], skip_special_tokens=False, clean_up_tokenization_spaces=False)


# --------------------------------------------------------------------------------------------------
# panel 1: one text, token by token


@dataclass
class TokenKLResult:
    """Per-token KL of one response.

    table:  one row per response token: position, token, token_id, logp_policy, logp_ref, log_ratio,
            kl_exact, k1, k2, k3, and running totals cum_kl_exact, cum_k1, cum_k2, cum_k3
    totals: sequence sums {"k1", "k2", "k3", "kl_exact"}
    max_position: the row with the largest kl_exact
    top:    top candidates of both models at max_position (see ``top_candidates``)
    """

    prompt: str
    response: str
    generated: bool
    table: pd.DataFrame
    totals: dict[str, float]
    max_position: int
    top: pd.DataFrame
    policy_temperature: float = 1.0

    def to_json(self) -> dict:
        """The CLI's schema: {"tokens": [{token, logp_policy, logp_ref, k1, k2, k3, kl_exact}], "total": {...}}."""
        keys = ("token", "logp_policy", "logp_ref", "k1", "k2", "k3", "kl_exact")
        tokens = [{k: (str(r[k]) if k == "token" else float(r[k])) for k in keys} for r in self.table.to_dict("records")]
        return {"tokens": tokens, "total": {k: float(self.totals[k]) for k in ("k1", "k2", "k3", "kl_exact")}}


def top_candidates(tokenizer, logp: torch.Tensor, logp_ref: torch.Tensor, n: int = 10) -> pd.DataFrame:
    """Top-n tokens of π and of π_ref at one position, side by side (logp, logp_ref: [V]).

    Columns: rank, policy_token, policy_p, policy_p_ref (π_ref of the policy's token), contribution
    (π(v)·(log π(v) − log π_ref(v)), its term of the exact KL), ref_token, ref_p, ref_p_policy.
    """
    n = max(1, min(int(n), logp.shape[-1]))
    p, p_ref = logp.exp(), logp_ref.exp()
    top_p = torch.topk(logp, n).indices
    top_r = torch.topk(logp_ref, n).indices
    rows = []
    for i in range(n):
        a, b = int(top_p[i]), int(top_r[i])
        rows.append(
            {
                "rank": i + 1,
                "policy_token": _decode_token(tokenizer, a),
                "policy_p": float(p[a]),
                "policy_p_ref": float(p_ref[a]),
                "contribution": float(p[a] * (logp[a] - logp_ref[a])),
                "ref_token": _decode_token(tokenizer, b),
                "ref_p": float(p_ref[b]),
                "ref_p_policy": float(p[b]),
            }
        )
    return pd.DataFrame(rows)


@torch.no_grad()
def token_kl(
    policy,
    reference,
    prompt: str,
    response: str | None = None,
    *,
    max_new_tokens: int = 24,
    policy_temperature: float = 1.0,
    seed: int = 0,
    top_n: int = 10,
) -> TokenKLResult:
    """Per-token KL(π‖π_ref) of ``response`` after ``prompt`` (ModelBundles in; see the module docstring).

    ``response=None`` lets the policy write one: up to ``max_new_tokens`` tokens sampled from π
    (temperature ``policy_temperature``, full vocabulary, seed ``seed``), stopping at EOS. An empty
    string is an error (nothing to measure).
    """
    t = check_temperature(policy_temperature)
    check_same_tokenizer(policy.tokenizer, reference.tokenizer)
    tok = policy.tokenizer
    q = encode_prompt(tok, prompt)
    generated = response is None
    if generated:
        if not isinstance(max_new_tokens, int) or not 1 <= max_new_tokens <= MAX_RESPONSE_TOKENS:
            raise KLInputError(f"response length must be 1…{MAX_RESPONSE_TOKENS} tokens, got {max_new_tokens!r}")
        batch = sample_responses(policy.model, tok, [q], max_new_tokens, temperature=t, seed=seed, ban_special_tokens=False)
        n_real = int(batch.response_mask[0].sum())
        r_ids = batch.response_ids[0, :n_real].tolist()
        response = tok.decode(r_ids, skip_special_tokens=True)
    else:
        r_ids = encode_response(tok, response)
    ids, mask = left_pad([q + r_ids], tok.pad_token_id, policy.device)
    batch = Batch(ids, mask, len(q), torch.ones((1, len(r_ids)), dtype=torch.long, device=policy.device))

    logp, logp_ref = logprobs_pair(policy, reference, batch, t)  # [1, R, V] each
    return _token_result(tok, prompt, response, generated, r_ids, logp[0], logp_ref[0], t, top_n)


def _token_result(
    tok, prompt: str, response: str, generated: bool, r_ids: list[int], logp: torch.Tensor, logp_ref: torch.Tensor, t: float, top_n: int
) -> TokenKLResult:
    """The per-token table of one response from log π and log π_ref over the vocabulary ([R, V] each)."""
    tokens = torch.tensor([r_ids], device=logp.device)  # [1, R]
    vals = {k: v[0].double().cpu() for k, v in per_position(logp[None], logp_ref[None], tokens).items()}  # each [R]

    table = pd.DataFrame(
        {
            "position": range(len(r_ids)),
            "token": [_decode_token(tok, i) for i in r_ids],
            "token_id": r_ids,
            **{k: vals[k].numpy() for k in ("logp_policy", "logp_ref", "log_ratio", "kl_exact", "k1", "k2", "k3")},
        }
    )
    for k in ("kl_exact", "k1", "k2", "k3"):
        table[f"cum_{k}"] = table[k].cumsum()
    totals = {k: float(vals[k].sum()) for k in ("k1", "k2", "k3", "kl_exact")}
    max_pos = int(vals["kl_exact"].argmax())
    top = top_candidates(tok, logp[max_pos], logp_ref[max_pos], top_n)
    return TokenKLResult(prompt, response, generated, table, totals, max_pos, top, t)


@torch.no_grad()
def token_kl_batch(
    policy, reference, prompt: str, seeds: list[int], *, max_new_tokens: int = 24, policy_temperature: float = 1.0, top_n: int = 10
) -> list[TokenKLResult]:
    """``token_kl(policy, reference, prompt, None, seed=s, ...)`` for every seed in ``seeds``, as ONE
    sampling pass and ONE scoring pass of both models over ``len(seeds)`` rows (the KL tab batches
    students' clicks this way: ``shared_work.py``).

    Each row draws from its own generator seeded with its seed, so it samples the response it samples
    alone; positions after a row's EOS are scored but not reported (the causal mask keeps them from
    the real ones). Numbers equal ``token_kl``'s to float rounding.
    """
    t = check_temperature(policy_temperature)
    check_same_tokenizer(policy.tokenizer, reference.tokenizer)
    tok = policy.tokenizer
    q = encode_prompt(tok, prompt)
    if not isinstance(max_new_tokens, int) or not 1 <= max_new_tokens <= MAX_RESPONSE_TOKENS:
        raise KLInputError(f"response length must be 1…{MAX_RESPONSE_TOKENS} tokens, got {max_new_tokens!r}")
    generators = [make_generator(s, policy.device) for s in seeds]
    batch = sample_responses(
        policy.model, tok, [q] * len(seeds), max_new_tokens, temperature=t, generator=generators, ban_special_tokens=False
    )  # [B, Q + R]
    logp, logp_ref = logprobs_pair(policy, reference, batch, t)  # [B, R, V] each
    out = []
    for i in range(len(seeds)):
        n_real = int(batch.response_mask[i].sum())
        r_ids = batch.response_ids[i, :n_real].tolist()
        out.append(
            _token_result(
                tok, prompt, tok.decode(r_ids, skip_special_tokens=True), True, r_ids, logp[i, :n_real], logp_ref[i, :n_real], t, top_n
            )
        )
    return out
