"""The optimal KL-regularised policy (theory/optimal.py), candidates (theory/candidates.py), the toy
REINFORCE (theory/toy.py) and its session (theory/toy_session.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from rlhf_demo.rewards.functions import make_reward
from rlhf_demo.theory.candidates import MAX_CANDIDATES, CandidatesConfig, distinct_rows, sample_candidates
from rlhf_demo.theory.optimal import (
    TheoryInputError,
    beta_sweep,
    beta_view,
    default_betas,
    log_partition,
    optimal_log_policy,
    optimal_table,
    policy_stats,
    renormalised_log_ref,
)
from rlhf_demo.theory.toy import MAX_TOY_STEPS, ToyConfig, toy_run, toy_step
from rlhf_demo.theory.toy_session import MAX_HISTORY, ToySession, parse_list, toy_config_from_text


def test_optimal_policy_hand_worked_case():
    """π_ref ∝ (2, 1, 1) over three candidates (unnormalised: sequence probabilities 0.02, 0.01, 0.01),
    r = (0, ln 2, 0), β = 1:  π* ∝ (0.5·1, 0.25·2, 0.25·1) = (0.5, 0.5, 0.25) → (0.4, 0.4, 0.2).
    E[r] = 0.4·ln 2; KL = 0.4 ln(0.4/0.5) + 0.4 ln(0.4/0.25) + 0.2 ln(0.2/0.25) = 0.4·ln 2 − ln 1.25;
    objective E[r] − KL = ln 1.25 = log Z."""
    logp_ref = torch.tensor([0.02, 0.01, 0.01], dtype=torch.float64).log()
    r = torch.tensor([0.0, math.log(2), 0.0], dtype=torch.float64)
    assert torch.allclose(renormalised_log_ref(logp_ref).exp(), torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64))
    pi = optimal_log_policy(logp_ref, r, beta=1.0).exp()
    assert torch.allclose(pi, torch.tensor([0.4, 0.4, 0.2], dtype=torch.float64), atol=1e-12)
    s = policy_stats(pi.log(), logp_ref, r, 1.0)
    assert s["expected_reward"] == pytest.approx(0.4 * math.log(2))
    assert s["kl"] == pytest.approx(0.4 * math.log(2) - math.log(1.25))
    assert s["objective"] == pytest.approx(math.log(1.25)) == pytest.approx(log_partition(logp_ref, r, 1.0))


def test_optimal_policy_is_stable_for_tiny_sequence_probabilities():
    """Sequence log-probabilities around −300 (exp underflows to 0 in float64): log-sum-exp copes."""
    logp_ref = torch.tensor([-300.0, -301.0, -305.0], dtype=torch.float64)
    r = torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64)
    pi = optimal_log_policy(logp_ref, r, 0.5).exp()
    assert torch.isfinite(pi).all() and pi.sum().item() == pytest.approx(1.0)
    q = torch.softmax(logp_ref, -1)
    expect = q * torch.exp(r / 0.5)
    assert torch.allclose(pi, expect / expect.sum())


def test_optimal_policy_maximises_the_objective():
    g = torch.Generator().manual_seed(0)
    logp_ref = torch.randn(6, generator=g, dtype=torch.float64) * 3 - 20
    r = torch.randn(6, generator=g, dtype=torch.float64)
    beta = 0.3
    best = policy_stats(optimal_log_policy(logp_ref, r, beta), logp_ref, r, beta)["objective"]
    for _ in range(200):  # random other policies over the set never do better
        other = torch.log_softmax(torch.randn(6, generator=g, dtype=torch.float64) * 2, -1)
        assert policy_stats(other, logp_ref, r, beta)["objective"] <= best + 1e-12


def test_beta_limits_and_sweep_monotone():
    logp_ref = torch.tensor([-5.0, -6.0, -7.0, -5.5], dtype=torch.float64)
    r = torch.tensor([-1.0, 0.2, 0.9, 0.4], dtype=torch.float64)
    sweep = beta_sweep(logp_ref, r)
    # small β: reward of the best candidate; large β: the reference's expected reward, KL → 0
    assert sweep["expected_reward"].iloc[0] == pytest.approx(0.9, abs=1e-6)
    assert sweep["expected_reward"].iloc[-1] == pytest.approx(sweep["ref_expected_reward"].iloc[-1], abs=1e-2)
    assert sweep["kl"].iloc[-1] < 1e-4
    assert sweep["kl"].iloc[0] == pytest.approx(-renormalised_log_ref(logp_ref)[2].item(), abs=1e-6)
    assert sweep["expected_reward"].is_monotonic_decreasing and sweep["kl"].is_monotonic_decreasing


@pytest.mark.parametrize("beta", [0, -1.0, float("nan"), float("inf")])
def test_bad_beta_is_refused(beta):
    with pytest.raises(TheoryInputError, match="positive"):
        optimal_log_policy(torch.zeros(3), torch.zeros(3), beta)


def test_optimal_table_needs_candidates():
    with pytest.raises(TheoryInputError, match="sample"):
        optimal_table(pd.DataFrame(columns=["response", "logp_ref", "reward"]), 1.0)


def test_candidate_limits():
    with pytest.raises(TheoryInputError, match="K must be"):
        CandidatesConfig(k=MAX_CANDIDATES + 1).validate()
    with pytest.raises(TheoryInputError, match="K must be"):
        CandidatesConfig(k=1).validate()


def test_sample_candidates_on_tiny_model(tiny_bundle):
    cfg = CandidatesConfig(k=6, response_tokens=5, seed=2)
    cands = sample_candidates(tiny_bundle, "The movie was", make_reward("length"), cfg)
    assert 1 <= len(cands) <= 6 and cands["response"].is_unique
    assert (cands["logp_ref"] < 0).all() and (cands["reward"] >= 0).all()
    tab = optimal_table(cands, 0.5)
    assert tab["q_ref"].sum() == pytest.approx(1.0) and tab["pi_star"].sum() == pytest.approx(1.0)


def test_distinct_rows_keeps_first_occurrences_in_order():
    assert distinct_rows([[1, 2], [3], [1, 2], [3], [4]]) == [0, 1, 4]


def test_beta_view_against_numpy():
    """π*, its statistics and the sweep recomputed independently in numpy (float64, no log-space)."""
    cands = pd.DataFrame(
        {"response": ["a", "b", "c", "d"], "logp_ref": [-5.0, -6.0, -7.0, -5.5], "reward": [-1.0, 0.2, 0.9, 0.4], "n_tokens": 3}
    )
    beta = 0.4
    view = beta_view(cands, beta)
    p_ref = np.exp(cands["logp_ref"].to_numpy())
    q = p_ref / p_ref.sum()
    r = cands["reward"].to_numpy()
    w = q * np.exp(r / beta)
    pi = w / w.sum()
    assert view.beta == beta and list(view.table["response"]) == ["c", "d", "b", "a"]  # best reward first
    by_resp = view.table.set_index("response")
    assert np.allclose(by_resp.loc[list(cands["response"]), "pi_star"], pi)
    assert np.allclose(by_resp.loc[list(cands["response"]), "q_ref"], q)
    assert view.expected_reward == pytest.approx((pi * r).sum())
    assert view.ref_expected_reward == pytest.approx((q * r).sum())
    assert view.kl == pytest.approx((pi * np.log(pi / q)).sum())
    assert view.objective == pytest.approx(beta * np.log(w.sum()))  # J(π*) = β·log Z
    assert len(view.sweep) == len(default_betas()) and view.sweep["beta"].is_monotonic_increasing
    assert (view.sweep["ref_expected_reward"] == view.ref_expected_reward).all()
    with pytest.raises(TheoryInputError, match="positive"):
        beta_view(cands, 0.0)
    with pytest.raises(TheoryInputError, match="sample"):
        beta_view(cands.iloc[:0], 1.0)


# ------------------------------------------------------------------------------- toy REINFORCE


def test_reinforce_sign_facts():
    """Without a baseline a positive reward raises its word's logit, a negative one lowers it; the
    maximum-likelihood step on the same samples raises every sampled word's probability mass."""
    cfg = ToyConfig(words=("up", "zero", "down"), rewards=(1.0, 0.0, -1.0), baseline=False, batch_size=64, lr=0.3).validate()
    logits = torch.zeros(3, dtype=torch.float64)
    rec = toy_step(cfg, logits, 0)
    tab = rec.samples_table()
    assert set(tab["word"]) == {"up", "zero", "down"}
    assert (tab.loc[tab.word == "up", "push"] == "up").all()
    assert (tab.loc[tab.word == "down", "push"] == "down").all()
    assert (tab.loc[tab.word == "zero", "delta_own_logit"] == 0).all()
    # each per-sample update moves its own word by lr·A·(1 − π)/B and the others the opposite way
    i = int(tab.index[tab.word == "up"][0])
    w = int(rec.samples[i])
    assert rec.per_sample_update[i, w].item() == pytest.approx(0.3 * 1.0 * (1 - 1 / 3) / 64)
    assert (rec.per_sample_update[i, torch.arange(3) != w] < 0).all()
    assert rec.per_sample_update.sum(0).sum().item() == pytest.approx(0.0, abs=1e-12)  # softmax-invariant
    assert rec.probs_after[0] > rec.probs_before[0] and rec.probs_after[2] < rec.probs_before[2]
    # ML on the same samples: frequencies go up in proportion to counts, reward ignored
    counts = torch.bincount(rec.samples, minlength=3).double() / 64
    ml_dir = rec.probs_ml - rec.probs_before
    assert torch.equal(torch.argsort(ml_dir), torch.argsort(counts - rec.probs_before))


def test_all_negative_rewards_with_baseline_still_favour_the_best_word():
    cfg = ToyConfig(words=("a", "b", "c"), rewards=(-1.0, -2.0, -3.0), baseline=True, batch_size=32, lr=0.5)
    last = list(toy_run(cfg, 100))[-1]
    assert last.probs_after.argmax().item() == 0


def test_toy_converges_to_the_analytic_optimum():
    """With the KL penalty β = 0.5 the learned policy approaches π* ∝ π_ref·exp(r/β):
    tolerance 0.01 in total variation after 600 steps (lr 0.5, N = 8), from a non-uniform π_ref."""
    cfg = ToyConfig(ref_probs=(0.1, 0.2, 0.4, 0.2, 0.1), kl_beta=0.5, lr=0.5, batch_size=8, seed=3)
    opt = cfg.validate().optimal_probs()
    last = list(toy_run(cfg, 600))[-1]
    tv = 0.5 * (last.probs_after - opt).abs().sum().item()
    assert tv < 0.01, (last.probs_after, opt)
    assert last.metrics["tv_to_optimal"] == pytest.approx(tv)
    # and it is not where it started
    assert 0.5 * (torch.tensor(cfg.ref_probs) - opt).abs().sum().item() > 0.3


def test_toy_without_baseline_also_converges_but_noisier():
    cfg = ToyConfig(kl_beta=1.0, lr=0.1, batch_size=16, baseline=False, seed=5)
    opt = cfg.validate().optimal_probs()
    recs = list(toy_run(cfg, 1500))
    mean_last = torch.stack([r.probs_after for r in recs[-300:]]).mean(0)
    assert 0.5 * (mean_last - opt).abs().sum().item() < 0.03


def test_toy_run_is_reproducible_and_resumable():
    cfg = ToyConfig(kl_beta=0.2, seed=9)
    full = list(toy_run(cfg, 10))
    first = list(toy_run(cfg, 4))
    rest = list(toy_run(cfg, 6, first[-1].logits_after, start_step=4))
    assert torch.equal(full[-1].logits_after, rest[-1].logits_after)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(words=("a",), rewards=(1.0,)), "2…"),
        (dict(words=("a", "a"), rewards=(1.0, 2.0)), "distinct"),
        (dict(words=("a", "b"), rewards=(1.0,)), "one reward per word"),
        (dict(kl_beta=-0.1), "≥ 0"),
        (dict(batch_size=10_000), "N must be"),
        (dict(lr=0.0), "learning rate"),
        (dict(ref_probs=(1, 0, 1, 1, 1)), "positive"),
    ],
)
def test_toy_config_validation(kwargs, match):
    with pytest.raises(TheoryInputError, match=match):
        ToyConfig(**kwargs).validate()


# ------------------------------------------------------------------------------- the toy's session


def test_toy_config_from_text():
    cfg = toy_config_from_text(" up, down ,", "1, -1", "", 0.3, 4.0, True, 0.2, None)
    assert cfg.words == ("up", "down") and cfg.rewards == (1.0, -1.0) and cfg.ref_probs is None
    assert (cfg.lr, cfg.batch_size, cfg.kl_beta, cfg.seed) == (0.3, 4, 0.2, 0)
    assert toy_config_from_text("a, b", "1, 0", "1, 3", 0.3, 4, True, 0.0, 1).ref_probs == (1.0, 3.0)
    assert parse_list("1,, 2 ", "x", float) == (1.0, 2.0)
    with pytest.raises(TheoryInputError, match="comma-separated numbers"):
        toy_config_from_text("a, b", "1, x", "", 0.3, 4, True, 0.0, 0)
    with pytest.raises(TheoryInputError, match="one reward per word"):
        toy_config_from_text("a, b", "1", "", 0.3, 4, True, 0.0, 0)


def test_toy_session_steps_equal_toy_run_and_resume_keeps_the_policy():
    cfg = ToyConfig(ref_probs=(0.1, 0.2, 0.4, 0.2, 0.1), kl_beta=0.5, seed=4).validate()
    s = ToySession.start(cfg)
    assert s.step == 0 and s.samples_frame().empty and list(s.probs_frame().columns) == ["word", "before", "optimal"]
    assert np.allclose(s.probs_frame()["before"], np.array(cfg.ref_probs) / sum(cfg.ref_probs))
    s.advance(3)
    s = ToySession.resume(s, cfg)  # same words: the policy goes on
    chunks = [x.step for x in s.run(7, chunk=3)]
    assert chunks == [6, 9, 10]
    direct = list(toy_run(cfg, 10))
    assert torch.equal(s.logits, direct[-1].logits_after)
    hist = s.history_frame()
    assert hist["step"].tolist() == list(range(11)) and list(hist.columns) == ["step", *cfg.words]
    assert np.allclose(hist.iloc[-1][list(cfg.words)].to_numpy(dtype=float), direct[-1].probs_after.numpy())
    assert len(s.samples_frame()) == cfg.batch_size and "reinforce" in s.probs_frame()
    # summary: the metrics of the current policy, and β·log Z with a KL penalty
    m = s.summary()
    assert m["step"] == 10 and m["tv_to_optimal"] == pytest.approx(direct[-1].metrics["tv_to_optimal"])
    assert m["beta_log_z"] == pytest.approx(0.5 * log_partition(cfg.log_ref, cfg.reward_tensor, 0.5))
    assert np.allclose(s.optimal(), cfg.optimal_probs().numpy())
    # other words: a fresh policy; no KL penalty: no π*, no β·log Z
    other = ToySession.resume(s, ToyConfig(words=("a", "b"), rewards=(1.0, 0.0)))
    assert other.step == 0 and other.optimal() is None and other.summary()["beta_log_z"] is None
    with pytest.raises(TheoryInputError, match="steps must be"):
        s.run(MAX_TOY_STEPS + 1)
    assert ToySession.resume(None, cfg).step == 0


def test_toy_session_history_is_capped():
    s = ToySession.start(ToyConfig(batch_size=1).validate())
    for _ in range(2):
        s.advance(MAX_TOY_STEPS)
    assert len(s.history) == MAX_HISTORY and s.history[-1]["step"] == 2 * MAX_TOY_STEPS
