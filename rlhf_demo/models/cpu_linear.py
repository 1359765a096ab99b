"""A faster LM head (and MLP) on CPU: oneDNN's matrix product instead of MKL's.

The LM head computes logits = h Wᵀ with h [M, 576] and W [49 152, 576]: a fifth of SmolLM2's weights,
run at every sampled token (M = batch size) and in every PPO forward (M = batch × response length).
PyTorch hands ``F.linear`` to MKL, which on this project's AMD EPYC runs that shape far below the
machine's speed. oneDNN, the CPU library PyTorch also ships (the one its compiler fuses linear layers
with), takes the same weight as it is, with no copy and no repacking; its forward took (ms, 2 cores,
2 threads, float32; mean of 2 interleaved runs; ``bench/`` has the end-to-end figures):

    M rows            8      16      32      96     192     384
    F.linear (MKL)   37      43      55     104     188     326
    (W hᵀ)ᵀ (MKL)    18      29      38      79     204     373    (this module's previous form)
    oneDNN           17      19      25      54     117     236

Its logits differ from MKL's by rounding only (≤ 3e-6 on SmolLM2's head). The backward keeps
PyTorch's own formulas (dL/dh = g W, dL/dW = gᵀ h: MKL runs those at full speed).

On AMD CPUs the MLP projections (gate and up 576 → 1536, down 1536 → 576) take the same path
(``speed_up_linears``; on the Intel Xeon measured they were slower that way, see there): at one
row, batch-1 decoding, MKL read their weights at 11–15 GB/s and oneDNN at 19–24 GB/s (of ~26 GB/s measured), and at 2–384 rows oneDNN was as fast or faster
(µs per product, 2 threads; noisy: other jobs shared the machine between runs):

    rows                 1     16    128    384
    gate/up  F.linear  393    515   1658   4031
             oneDNN    223    386   1293   3576
    down     F.linear  288    440   1493   4458
             oneDNN    261    395   1327   3747

Playground decoding (batch 1, 64 tokens) went from 17.9 to 20.1 tokens/s with the same tokens and
probabilities equal to 3e-8. The attention projections (576 → 576, 576 → 192) gained nothing at one
row, so they keep ``F.linear`` (and LoRA wraps them in PPO).

The input is made contiguous first: transformers slices the last hidden states (``logits_to_keep``)
before the head, and ``F.linear`` on that [B, R, H] view takes a batched-matmul path 2.4× slower.

Inputs that are not float32 on a CPU (CUDA, bfloat16), CPUs other than x86-64 (measured only there;
on ARM, PyTorch's own BLAS may well be the faster one) and PyTorch builds without oneDNN take
``F.linear`` unchanged, so moving the model to a GPU needs no undoing.
"""

from __future__ import annotations

import functools
import platform
from types import MethodType

import torch
import torch.nn.functional as F
from torch import nn


def _onednn_product(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x [M, K] · weight [N, K]ᵀ → [M, N] through oneDNN (PyTorch's ``mkldnn._linear_pointwise``)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, None, "none", [], "")


@functools.cache
def onednn_available() -> bool:
    """True on an x86-64 CPU when this PyTorch build has oneDNN's linear op and it gives F.linear's numbers."""
    try:
        if platform.machine().lower() not in ("x86_64", "amd64") or not torch.backends.mkldnn.is_available():
            return False
        x = torch.arange(15.0).reshape(3, 5).sin()  # fixed numbers: no draw from the global RNG,
        w = torch.arange(20.0).reshape(4, 5).cos()  # which a seeded sampler may be about to use
        return bool(torch.allclose(_onednn_product(x, w), F.linear(x, w), atol=1e-5))
    except (AttributeError, NotImplementedError, RuntimeError):
        return False


class _OneDNNLinear(torch.autograd.Function):
    """y = x Wᵀ by oneDNN for x [M, K], W [N, K] → y [M, N]; gradients by PyTorch's formulas."""

    @staticmethod
    def forward(ctx, x, weight):
        ctx.save_for_backward(x, weight)
        return _onednn_product(x, weight)  # [M, N]

    @staticmethod
    def backward(ctx, grad):  # grad [M, N]
        x, weight = ctx.saved_tensors
        grad_x = grad @ weight if ctx.needs_input_grad[0] else None  # [M, K]
        grad_w = grad.t() @ x if ctx.needs_input_grad[1] else None  # [N, K]
        return grad_x, grad_w


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` on a contiguous copy of x, by oneDNN for float32 on a CPU.
    x [..., K], weight [N, K] → [..., N]."""
    if x.device.type != "cpu" or x.dim() < 2 or not weight.is_contiguous():
        return F.linear(x, weight, bias)
    if x.dtype != torch.float32 or weight.dtype != torch.float32:  # e.g. bfloat16: F.linear, on a contiguous x
        return F.linear(x.contiguous(), weight, bias)
    x2 = x.reshape(-1, x.shape[-1]).contiguous()  # [M, K]; copies a sliced (non-contiguous) input
    y = _OneDNNLinear.apply(x2, weight) if onednn_available() else F.linear(x2, weight)  # [M, N]
    if bias is not None:
        y = y + bias
    return y.reshape(*x.shape[:-1], weight.shape[0])


def _forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return linear(x, self.weight, self.bias)


def _speed_up(layer) -> bool:
    if type(layer) is not nn.Linear or getattr(layer, "_rlhf_fast", False):
        return False
    layer.forward = MethodType(_forward, layer)
    layer._rlhf_fast = True
    return True


def speed_up_lm_head(model: nn.Module) -> bool:
    """Give the model's output embedding (its LM head) the forward above; False if it has none or
    already has it."""
    return _speed_up(model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None)


MLP_PROJECTIONS = ("gate_proj", "up_proj", "down_proj")
"""The linear layers of a Llama-style MLP (SmolLM2's), by name."""


@functools.cache
def cpu_vendor() -> str:
    """The CPU's vendor id from /proc/cpuinfo (``AuthenticAMD``, ``GenuineIntel``), or "" where unknown."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def speed_up_linears(model: nn.Module) -> int:
    """The LM head, and on AMD CPUs every MLP projection (``MLP_PROJECTIONS``), through the forward
    above; returns how many layers were given it now. On an Intel Xeon (with AMX) the oneDNN MLP was
    the slower one: batch-1 decoding 9.8 against F.linear's 13.1 tokens/s, batch 16 80 against 93
    (median of 4, interleaved, same process; ``docs/experiments.md``), so there the MLP keeps F.linear."""
    n = int(speed_up_lm_head(model))
    if cpu_vendor() != "AuthenticAMD":
        return n
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in MLP_PROJECTIONS:
            n += _speed_up(module)
    return n
