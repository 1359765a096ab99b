"""Shared mode: what a request or a training may cost — the memory model of the big tensors (logits
``[rows, positions, vocab]``: ``logits_bytes`` and the KL tab's and π* candidates' peaks), the checks of
an interactive request (``check_prompt_tokens``, ``check_request``) and of a training
(``check_training``: its model, reward and data through ``allowlist``, its time, steps and tensors).
Asked once where the session is known (the page, the named API, the CLI). The settings are in
``limits.py``. It imports neither torch nor gradio.
"""

from __future__ import annotations

from rlhf_demo.classroom.allowlist import check_model, check_reward, check_source
from rlhf_demo.classroom.limits import VOCAB, LimitError, Limits, current


# ----------------------------------------------------------------------------- memory model
def logits_bytes(rows: int, positions: int, copies: float = 1.0, vocab: int = VOCAB) -> float:
    """float32 bytes of ``copies`` tensors [rows, positions, vocab]."""
    return 4.0 * copies * rows * positions * vocab


def kl_peak_bytes(rows: int, prompt_tokens: int, response_tokens: int, vocab: int = VOCAB) -> float:
    """Bytes of one scoring pass of the KL tab (``kl.analysis.logprobs_pair`` + ``per_position``) on
    ``rows`` responses: each model's forward returns logits for every position, [rows, Q + R, V], kept
    alive by the response slice; then log π/T, log π_ref and the exact KL's temporaries over the
    response: measured 2·(Q + R) + 3…3.8·R rows of V floats per response; modelled 2·(Q + R) + 4·R."""
    return logits_bytes(rows, 2 * (prompt_tokens + response_tokens) + 4 * response_tokens, vocab=vocab)


def candidates_peak_bytes(k: int, prompt_tokens: int, response_tokens: int, vocab: int = VOCAB) -> float:
    """Bytes of scoring K candidates (``theory.candidates``): the reference's logits for every position
    [K, Q + R, V], a contiguous copy of the response slice and its log-softmax [K, R, V] each
    (measured: K·(Q + 3R) rows of V floats)."""
    return logits_bytes(k, prompt_tokens + 3 * response_tokens, vocab=vocab)


def check_prompt_tokens(n_tokens: int, limits: Limits | None = None, what: str = "the prompt") -> None:
    lim = limits or current()
    if lim.shared and n_tokens > lim.max_prompt_tokens:
        raise LimitError(f"{what} has {n_tokens} tokens; this shared server takes at most {lim.max_prompt_tokens}")


def check_request(peak: float, what: str, advice: str, limits: Limits | None = None) -> None:
    """LimitError when a request would hold more than the shared server's ``max_request_bytes``."""
    lim = limits or current()
    if lim.shared and peak > lim.max_request_bytes:
        raise LimitError(
            f"{what} would hold ≈{peak / 1e9:.1f} GB of logits; this shared server allows "
            f"{lim.max_request_bytes / 1e9:g} GB per request: {advice}"
        )


# ----------------------------------------------------------------------------- trainings
def check_training(cfg, limits: Limits) -> None:
    """Raise LimitError when a training config passes its own validation but not the shared limits.

    ``limits``: those of the session asking (``AppContext.session_limits(request)``: its own runs'
    policies and reward models are allowed; the CLI passes ``current()``). Asked once, where the
    session is known (the page, the named API, the CLI); ``TrainerConfig.validate()`` never asks it."""
    lim = limits
    if not lim.shared:
        return
    algo = cfg.algo.upper()
    check_model(cfg.model, limits=lim, what="model")
    for what in ("reward", "gold_reward"):
        if getattr(cfg, what, "none") != "none":
            check_reward(getattr(cfg, what), lim)
    for what in ("prompts", "preferences"):
        if hasattr(cfg, what):
            check_source(getattr(cfg, what), what, lim)
    if getattr(cfg, "full_finetune", False) and not lim.allow_full_finetune:
        raise LimitError("full fine-tuning is off on this shared server (LoRA only)")
    if getattr(cfg, "report_to", "none") != "none":
        raise LimitError("experiment tracking is off on this shared server: report_to must be none")
    if not cfg.max_seconds or cfg.max_seconds > lim.max_train_s:
        raise LimitError(
            f"on this shared server a training runs at most {lim.max_train_s:g} s: set max_seconds between 1 and {lim.max_train_s:g}"
        )
    if cfg.steps and cfg.steps > lim.max_steps:
        raise LimitError(f"on this shared server a training has at most {lim.max_steps} steps; got {cfg.steps}")
    from rlhf_demo.algorithms import get  # here: the algorithms' memory models use this module's helpers

    model = get(cfg.algo)
    peak = model.peak_bytes(cfg) if model.peak_bytes is not None else 0.0  # None: not modelled yet
    if peak > lim.max_tensor_bytes:
        raise LimitError(
            f"this {algo} run would hold ≈{peak / 1e9:.1f} GB of tensors; the shared server allows "
            f"{lim.max_tensor_bytes / 1e9:g} GB: lower {model.peak_advice}"
        )
