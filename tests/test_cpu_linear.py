"""The CPU LM head (oneDNN's product) must give F.linear's numbers and gradients, for a few rows
(a sampling step) and many (a PPO forward), and a model given it must give the same logits and
gradients as one without."""

import copy

import pytest
import torch
import torch.nn.functional as F

from rlhf_demo.models import cpu_linear
from rlhf_demo.models.cpu_linear import linear, speed_up_lm_head


def test_this_build_takes_the_onednn_path():
    assert cpu_linear.onednn_available()  # x86 PyTorch ships oneDNN: the tests below exercise it


def test_the_onednn_check_draws_nothing_from_the_global_rng():
    """The check runs at the first LM-head call, often right after a sampler seeded the global RNG:
    a draw there would make the first seeded generation of a process differ from the next ones."""
    cpu_linear.onednn_available.cache_clear()
    torch.manual_seed(0)
    assert cpu_linear.onednn_available()
    after_check = torch.rand(4)
    torch.manual_seed(0)
    assert torch.equal(after_check, torch.rand(4))


@pytest.mark.parametrize("rows", [4, 201])
def test_linear_matches_f_linear_values_and_gradients(rows):
    torch.manual_seed(0)
    base = torch.randn(3, rows // 3 + 2, 24)
    x = base[:, 2:, :]  # a sliced, non-contiguous input, as transformers hands the LM head
    w, b = torch.randn(40, 24), torch.randn(40)
    g = torch.randn(3, rows // 3, 40)
    for bias in (None, b):
        xs = [x.clone().requires_grad_(True) for _ in range(2)]
        ws = [w.clone().requires_grad_(True) for _ in range(2)]
        y0 = F.linear(xs[0], ws[0], bias)
        y1 = linear(xs[1], ws[1], bias)
        assert y1.shape == y0.shape and y1.is_contiguous()
        torch.testing.assert_close(y1, y0, atol=1e-5, rtol=1e-5)
        y0.backward(g)
        y1.backward(g)
        torch.testing.assert_close(xs[1].grad, xs[0].grad, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ws[1].grad, ws[0].grad, atol=1e-5, rtol=1e-5)


def test_other_dtypes_take_f_linear():
    x, w = torch.randn(4, 8, dtype=torch.bfloat16), torch.randn(6, 8, dtype=torch.bfloat16)
    assert torch.equal(linear(x, w), F.linear(x, w))


def test_model_with_the_fast_head_gives_the_same_logits_and_grads(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    fast = copy.deepcopy(plain)
    assert speed_up_lm_head(fast) and not speed_up_lm_head(fast)  # once only
    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16]])
    out0 = plain(input_ids=ids, labels=ids)
    out1 = fast(input_ids=ids, labels=ids)
    torch.testing.assert_close(out1.logits, out0.logits, atol=1e-5, rtol=1e-5)
    out0.loss.backward()
    out1.loss.backward()
    for (name, p0), (_, p1) in zip(plain.named_parameters(), fast.named_parameters()):
        torch.testing.assert_close(p1.grad, p0.grad, atol=1e-5, rtol=1e-4, msg=name)
    with torch.no_grad():  # the sliced input of generate's last position
        torch.testing.assert_close(fast(input_ids=ids, logits_to_keep=1).logits, out0.logits[:, -1:], atol=1e-5, rtol=1e-5)
