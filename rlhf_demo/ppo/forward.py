"""The policy's forward pass over sampled responses: logits and values for each response token.

PPO needs, for a batch of query + response, the log-probabilities of the response tokens under the
current policy (and under the reference) and the value head's prediction at each of them. Position t
predicts token t + 1, so only the R positions before the response tokens go through the LM head.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rlhf_demo.decoding.sampling import Batch, position_ids
from rlhf_demo.ppo.trunk import top_forward


class ValueHead(nn.Module):
    """V(s_t) = w·h_t + b on the backbone's last hidden state h_t (zero-initialised: V starts at 0)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.summary = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.summary.weight)
        nn.init.zeros_(self.summary.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # [B, R, H] -> [B, R]
        return self.summary(hidden.float()).squeeze(-1)


def forward_response(
    model, batch: Batch, value_head: ValueHead | None = None, trunk_layer: int | None = None, value_grad_to_policy: bool = True
):
    """One forward over query+response. Returns (logits [B, R, V] in float32, values [B, R] or None).

    Position t predicts token t+1, so only the R positions before each response token go through the
    LM head. With ``trunk_layer`` (and ``batch.trunk``), only the layers from ``trunk_layer`` up run,
    on the stored hidden states entering it (``trunk.py``); otherwise the whole model runs.
    With ``value_grad_to_policy`` False the value head reads the hidden states detached, so the value
    loss trains the head alone and cannot move the policy's weights."""
    R = batch.response_ids.shape[1]
    q = batch.query_len
    want_hidden = value_head is not None
    if trunk_layer is not None and batch.trunk is not None:
        T = batch.trunk.shape[1]  # Q + R − 1
        out = top_forward(
            model,
            batch.trunk,
            batch.attention_mask[:, :T],
            position_ids(batch.attention_mask)[:, :T],
            trunk_layer,
            logits_to_keep=R,
            output_hidden_states=want_hidden,
        )
        logits = out.logits.float()  # [B, R, V]
        hidden = out.hidden_states[-1][:, q - 1 :, :] if want_hidden else None  # [B, R, H]
    else:
        out = model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=position_ids(batch.attention_mask),
            use_cache=False,
            output_hidden_states=want_hidden,
            logits_to_keep=R + 1,
        )
        logits = out.logits[:, :-1, :].float()  # [B, R, V]
        hidden = out.hidden_states[-1][:, q - 1 : -1, :] if want_hidden else None  # [B, R, H]
    if want_hidden and not value_grad_to_policy:
        hidden = hidden.detach()
    values = value_head(hidden) if want_hidden else None  # [B, R]
    return logits, values


def pick(logp_all: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """The sampled tokens' entries of full log-probabilities: [B, R, V], [B, R] → [B, R]."""
    return torch.gather(logp_all, 2, tokens.unsqueeze(-1)).squeeze(-1)


def gather_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[token]: [B, R, V], [B, R] → [B, R]."""
    return pick(F.log_softmax(logits, dim=-1), tokens)


def subset(batch: Batch, idx: torch.Tensor) -> Batch:
    """Rows ``idx`` of a batch (query padding kept, so ``query_len`` stays valid)."""
    return Batch(
        batch.input_ids[idx],
        batch.attention_mask[idx],
        batch.query_len,
        batch.response_mask[idx],
        trunk=batch.trunk[idx] if batch.trunk is not None else None,
    )
