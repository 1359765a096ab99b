"""PPO maths against hand-worked numbers and independent computations."""

import math

import pytest
import torch

from rlhf_demo.ppo.kl_control import AdaptiveKLController, FixedKLController
from rlhf_demo.ppo.loss import compute_rewards, entropy_from_logits, gae, kl_per_token, last_token_index, policy_loss, value_loss, whiten


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def test_gae_hand_worked_lambda_half():
    # r = [0, 0, 1], V = [0.5, 0.2, 0.4], γ = 1, λ = 0.5
    # δ2 = 1 − 0.4 = 0.6              A2 = 0.6
    # δ1 = 0 + 0.4 − 0.2 = 0.2        A1 = 0.2 + 0.5·0.6 = 0.5
    # δ0 = 0 + 0.2 − 0.5 = −0.3       A0 = −0.3 + 0.5·0.5 = −0.05
    adv, ret = gae(t([[0, 0, 1]]), t([[0.5, 0.2, 0.4]]), t([[1, 1, 1]]), gamma=1.0, lam=0.5)
    assert adv.tolist()[0] == pytest.approx([-0.05, 0.5, 0.6])
    assert ret.tolist()[0] == pytest.approx([0.45, 0.7, 1.0])


def test_gae_lambda_one_returns_are_discounted_reward_sums():
    # λ = 1: returns_t = Σ_k γ^k r_{t+k}, independent of V
    r = t([[0.1, -0.2, 1.0]])
    adv, ret = gae(r, t([[0.5, 0.2, 0.4]]), t([[1, 1, 1]]), gamma=0.9, lam=1.0)
    assert ret.tolist()[0] == pytest.approx([0.1 - 0.2 * 0.9 + 0.81, -0.2 + 0.9, 1.0])
    assert adv.tolist()[0] == pytest.approx([0.1 - 0.18 + 0.81 - 0.5, 0.7 - 0.2, 0.6])


def test_gae_stops_at_the_last_real_token():
    # second row ends after two tokens: its third value/reward must not leak in
    r = t([[0, 0, 1], [0, 1, 5]])
    v = t([[0.5, 0.2, 0.4], [0.5, 0.2, 9.0]])
    m = t([[1, 1, 1], [1, 1, 0]])
    adv, ret = gae(r, v, m, gamma=1.0, lam=0.5)
    # row 2: δ1 = 1 − 0.2 = 0.8, A1 = 0.8; δ0 = 0.2 − 0.5 = −0.3, A0 = −0.3 + 0.4 = 0.1
    assert adv[1].tolist() == pytest.approx([0.1, 0.8, 0.0])
    assert ret[1].tolist() == pytest.approx([0.6, 1.0, 0.0])


def test_compute_rewards_kl_on_every_token_score_on_last():
    lp = t([[-1.0, -2.0, -0.5], [-1.0, -1.0, -1.0]])
    ref = t([[-1.5, -1.0, -0.5], [-1.0, -2.0, -3.0]])
    mask = t([[1, 1, 1], [1, 1, 0]])
    scores = t([0.8, -0.3])
    rewards, non_score, kl = compute_rewards(scores, lp, ref, mask, beta=0.1)
    assert torch.allclose(kl, t([[0.5, -1.0, 0.0], [0.0, 1.0, 0.0]]))
    assert torch.allclose(non_score, t([[-0.05, 0.1, 0.0], [0.0, -0.1, 0.0]]))
    # the score lands on the last *real* token of each row
    assert torch.allclose(rewards, t([[-0.05, 0.1, 0.8], [0.0, -0.1 - 0.3, 0.0]]))
    assert last_token_index(mask).tolist() == [2, 1]


def test_compute_rewards_beta_zero_is_score_only():
    lp, ref = torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    rewards, _, _ = compute_rewards(t([1.0, 2.0]), lp, ref, torch.ones(2, 4), beta=0.0)
    assert rewards.tolist() == [[0, 0, 0, 1.0], [0, 0, 0, 2.0]]


def test_k3_penalty_is_nonnegative_and_matches_formula():
    lp, ref = t([[-1.0, -3.0, -0.2]]), t([[-2.0, -1.0, -0.2]])
    k3 = kl_per_token(lp, ref, "k3")
    r = torch.exp(ref - lp)
    assert torch.allclose(k3, (r - 1) - torch.log(r))
    assert (k3 >= 0).all() and k3[0, 2] == 0
    with pytest.raises(ValueError, match="k1 or k3"):
        kl_per_token(lp, ref, "k9")


def test_whiten_masked():
    x = t([[1.0, 2.0, 3.0, 100.0]])
    m = t([[1, 1, 1, 0]])
    w = whiten(x, m)
    assert w[0, 3] == 0
    vals = w[0, :3]
    assert vals.mean().item() == pytest.approx(0, abs=1e-9)
    assert vals.std().item() == pytest.approx(1, rel=1e-6)  # unbiased std, as TRL
    kept = whiten(x, m, shift_mean=False)[0, :3]
    assert kept.mean().item() == pytest.approx(2.0)


def test_policy_loss_clipping():
    old = t([[0.0, 0.0, 0.0, 0.0]]).log_softmax(-1)  # any old log-probs
    # ratios 1.5 (A>0: clipped at 1.2), 0.5 (A>0: unclipped, pessimistic), 1.5 (A<0: unclipped), 0.5 (A<0: clipped at 0.8)
    new = (old + t([[math.log(1.5), math.log(0.5), math.log(1.5), math.log(0.5)]])).requires_grad_(True)
    adv = t([[1.0, 1.0, -1.0, -1.0]])
    out = policy_loss(new, old, adv, torch.ones(1, 4), cliprange=0.2)
    expected = (-(1.2) - 0.5 + 1.5 + 0.8) / 4
    assert out["loss"].item() == pytest.approx(expected)
    assert out["clipfrac"].item() == pytest.approx(0.5)
    out["loss"].backward()
    g = new.grad[0]
    assert g[0] == 0 and g[3] == 0  # clipped: no gradient
    assert g[1] != 0 and g[2] != 0
    r = torch.tensor([1.5, 0.5, 1.5, 0.5], dtype=torch.float64)
    assert out["approx_kl"].item() == pytest.approx(((r - 1) - r.log()).mean().item())


def test_policy_loss_no_clip_at_ratio_one():
    lp = torch.randn(2, 5, dtype=torch.float64)
    out = policy_loss(lp, lp.clone(), torch.randn(2, 5, dtype=torch.float64), torch.ones(2, 5), 0.2)
    assert out["clipfrac"] == 0 and out["approx_kl"].abs() < 1e-12 and out["ratio"] == pytest.approx(1.0)


def test_value_loss_clipped():
    old = t([[0.0, 0.0]])
    ret = t([[1.0, 1.0]])
    new = t([[0.5, 0.1]])
    out = value_loss(new, old, ret, torch.ones(1, 2), cliprange_value=0.2)
    # token 0: unclipped (0.5−1)² = 0.25, clipped (0.2−1)² = 0.64 → 0.64; token 1: (0.1−1)² = 0.81 both
    assert out["loss"].item() == pytest.approx(0.5 * (0.64 + 0.81) / 2)
    assert out["clipfrac"].item() == pytest.approx(0.5)


def test_entropy_from_logits():
    assert entropy_from_logits(torch.zeros(1, 4)).item() == pytest.approx(math.log(4), rel=1e-6)
    p = torch.tensor([0.7, 0.2, 0.1])
    assert entropy_from_logits(p.log()).item() == pytest.approx(-(p * p.log()).sum().item(), rel=1e-5)


def test_adaptive_kl_controller():
    c = AdaptiveKLController(0.1, target=4.0, horizon=100)
    c.update(8.0, n_steps=10)  # error clipped to +0.2 → ×(1 + 0.2·10/100)
    assert c.value == pytest.approx(0.1 * 1.02)
    c2 = AdaptiveKLController(0.1, target=4.0, horizon=100)
    c2.update(3.0, n_steps=10)  # error −0.25 clipped to −0.2
    assert c2.value == pytest.approx(0.1 * 0.98)
    c3 = AdaptiveKLController(0.1, target=4.0, horizon=100)
    c3.update(4.4, n_steps=10)  # error 0.1
    assert c3.value == pytest.approx(0.1 * 1.01)
    c4 = AdaptiveKLController(0.1, 4.0, 100)
    c4.update(4.0, 10)
    assert c4.value == pytest.approx(0.1)
    f = FixedKLController(0.3)
    f.update(100.0, 16)
    assert f.value == 0.3
