"""The frozen trunk: run only the top layers of a decoder when the layers below them never change.

When LoRA sits only on the top N decoder layers, everything below them is frozen and adapter-free,
so the policy, the reference (adapter off) and every PPO epoch compute *identical* hidden states at
the entrance of layer L − N. Generation already computed them (``output_hidden_states``), so the
reference forward and the PPO forwards/backwards only need the top N layers:

    h_trunk = hidden state entering layer L − N         [B, T, H]   (taken from generation)
    logits  = lm_head(norm(layers[L−N:](h_trunk)))       [B, T, V]

With N = 8 of SmolLM2's 30 layers this cuts those passes to about a third, and the backward pass
stops at layer L − N by itself (nothing below needs a gradient).

The top layers run through the model's own ``forward`` (``inputs_embeds`` = the trunk states, its
layer list temporarily cut to the top N), so masks, rotary positions, the final norm and the LM head
stay transformers' code. ``check_trunk`` compares the result with a full forward once; models for
which it does not hold (other layouts, embedding scaling, per-layer attention types) use full
forwards instead.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn

from rlhf_demo.models.lora import decoder_layers_owner, num_layers  # noqa: F401 (re-exported)


@contextmanager
def only_top_layers(model, first: int):
    """Within the block, ``model``'s decoder runs layers ``first..L−1`` only."""
    owner = decoder_layers_owner(model)
    full = owner.layers
    owner.layers = nn.ModuleList(list(full)[first:])
    try:
        yield
    finally:
        owner.layers = full


def top_forward(
    model,
    trunk: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    first: int,
    logits_to_keep: int,
    output_hidden_states: bool = False,
):
    """Forward of layers ``first..L−1`` (+ norm + LM head) on trunk states [B, T, H] entering layer ``first``.

    attention_mask / position_ids: [B, T] for the same T positions. Returns the model's output
    (``logits`` [B, logits_to_keep, V]; ``hidden_states[-1]`` = the final normed states)."""
    with only_top_layers(model, first):
        return model(
            inputs_embeds=trunk,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
            output_hidden_states=output_hidden_states,
            logits_to_keep=logits_to_keep,
        )


@torch.no_grad()
def check_trunk(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor, first: int, atol: float = 1e-3
) -> bool:
    """True when ``top_forward`` on the states entering layer ``first`` reproduces a full forward's logits."""
    if decoder_layers_owner(model) is None or not 0 < first < num_layers(model):
        return False
    full = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False, output_hidden_states=True)
    try:
        top = top_forward(
            model,
            full.hidden_states[first],
            attention_mask,
            position_ids,
            first,
            logits_to_keep=input_ids.shape[1],
            output_hidden_states=True,
        )
    except Exception:  # noqa: BLE001 - any layout this trick does not fit means: use full forwards
        return False
    real = attention_mask.bool()
    same_logits = torch.allclose(full.logits[real].float(), top.logits[real].float(), atol=atol, rtol=1e-3)
    same_hidden = torch.allclose(full.hidden_states[-1][real].float(), top.hidden_states[-1][real].float(), atol=atol, rtol=1e-3)
    return bool(same_logits and same_hidden)
