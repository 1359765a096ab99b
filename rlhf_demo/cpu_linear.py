"""A faster LM head on CPU for the few rows a sampling step feeds it.

The LM head computes logits = h Wᵀ with h [M, 576] and W [49 152, 576]: a fifth of SmolLM2's weights,
run at every sampled token. PyTorch hands it to MKL as ``h @ W.t()``; for small M that call runs well
below MKL's speed. The transpose of the same product, logits = (W hᵀ)ᵀ, is a different call with the
same dot products (identical bits in our measurements); made contiguous again it took (ms, 2 cores,
2 threads; ``bench/`` has the end-to-end figures):

    M rows          8      16      32      64     128     192
    h @ W.t()      34.4    30.3    43.8    57.9   111.0   168.0
    (W hᵀ)ᵀ        16.2    19.2    31.4    49.9    94.8   164.6

A sampling step has M = batch size (8–16); a PPO forward has M = batch × response length (192), where
the two are even, so only inputs of at most ``MAX_ROWS`` rows take the transposed form. The other
linear layers (576 → 1536 and such) gained little or lost, and their transposed outputs slowed the
operations after them, so they keep ``F.linear``.

The input is made contiguous first: transformers slices the last hidden states (``logits_to_keep``)
before the head, and ``F.linear`` on that [B, R, H] view takes a batched-matmul path 2.4× slower
(0.41 s vs 0.17 s for [16, 12, 576] × 49 152, forward and again in backward).

Backward keeps PyTorch's own formulas (dL/dh = g W, dL/dW = gᵀ h). Inputs that are not float32 on a
CPU (CUDA, bfloat16) take ``F.linear`` unchanged, so moving the model to a GPU needs no undoing.
"""
from __future__ import annotations

from types import MethodType

import torch
import torch.nn.functional as F
from torch import nn

MAX_ROWS = 128


class _TransposedProduct(torch.autograd.Function):
    """y = (W xᵀ)ᵀ for x [M, K], W [N, K] → y [M, N] (contiguous); gradients as ``F.linear``'s."""

    @staticmethod
    def forward(ctx, x, weight):
        ctx.save_for_backward(x, weight)
        return (weight @ x.t()).t().contiguous()        # [N, M] → [M, N]

    @staticmethod
    def backward(ctx, grad):                            # grad [M, N]
        x, weight = ctx.saved_tensors
        grad_x = grad @ weight if ctx.needs_input_grad[0] else None        # [M, K]
        grad_w = grad.t() @ x if ctx.needs_input_grad[1] else None         # [N, K]
        return grad_x, grad_w


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` on a contiguous copy of x; (W xᵀ)ᵀ for ≤ MAX_ROWS float32 CPU rows.
    x [..., K], weight [N, K] → [..., N]."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or weight.dtype != torch.float32 or x.dim() < 2:
        return F.linear(x, weight, bias)
    x2 = x.reshape(-1, x.shape[-1])                     # [M, K]; copies a sliced (non-contiguous) input
    y = _TransposedProduct.apply(x2, weight) if x2.shape[0] <= MAX_ROWS else F.linear(x2, weight)  # [M, N]
    if bias is not None:
        y = y + bias
    return y.reshape(*x.shape[:-1], weight.shape[0])


def _forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return linear(x, self.weight, self.bias)


def speed_up_lm_head(model: nn.Module) -> bool:
    """Give the model's output embedding (its LM head) the forward above; False if it has none or
    already has it."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if type(head) is not nn.Linear or getattr(head, "_rlhf_fast", False):
        return False
    head.forward = MethodType(_forward, head)
    head._rlhf_fast = True
    return True
