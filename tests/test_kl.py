"""KL maths (kl/estimators.py), the per-token analysis (kl/analysis.py) and the estimator lab (kl/lab.py).

Numbers are checked against independent computations: explicit float64 sums over the vocabulary,
closed forms, and sample means with their own standard errors.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from rlhf_demo.kl.analysis import KLInputError, check_same_tokenizer, token_kl
from rlhf_demo.kl.estimators import exact_kl, k1, k2, k3
from rlhf_demo.kl.lab import MAX_SAMPLES, EstimatorLabConfig, estimator_lab
from rlhf_demo.models.loading import ModelBundle

PROMPT = "The movie was"


def explicit_kl(logp: torch.Tensor, logp_ref: torch.Tensor) -> float:
    """Σ_v π(v)(log π(v) − log π_ref(v)) as a plain Python loop in float64 (independent of kl.py)."""
    p, a, b = logp.double().exp().tolist(), logp.double().tolist(), logp_ref.double().tolist()
    return math.fsum(pi * (x - y) for pi, x, y in zip(p, a, b) if pi > 0)


# ------------------------------------------------------------------------------- pure maths


def test_kl_of_a_distribution_with_itself_is_exactly_zero():
    g = torch.Generator().manual_seed(0)
    logp = F.log_softmax(torch.randn(4, 7, 1000, generator=g) * 3, -1)
    assert torch.equal(exact_kl(logp, logp.clone()), torch.zeros(4, 7))
    logr = logp - logp
    for est in (k1, k2, k3):
        assert torch.equal(est(logr), torch.zeros_like(logr))


def test_exact_kl_is_nonnegative_and_matches_explicit_sum():
    g = torch.Generator().manual_seed(1)
    for scale in (0.1, 1.0, 5.0):
        logp = F.log_softmax(torch.randn(20, 300, generator=g, dtype=torch.float64) * scale, -1)
        logq = F.log_softmax(torch.randn(20, 300, generator=g, dtype=torch.float64) * scale, -1)
        kl = exact_kl(logp, logq)
        assert (kl >= 0).all()
        for i in range(0, 20, 5):
            assert kl[i].item() == pytest.approx(explicit_kl(logp[i], logq[i]), rel=1e-10, abs=1e-14)


def test_exact_kl_handles_zero_probabilities():
    logp = torch.log(torch.tensor([0.5, 0.5, 0.0]))
    logq = torch.log(torch.tensor([0.25, 0.25, 0.5]))
    assert exact_kl(logp, logq).item() == pytest.approx(math.log(2))
    assert math.isfinite(exact_kl(logp, logq).item())


@pytest.mark.parametrize(
    "dtype,logr,rel",
    [
        (torch.float64, 1e-12, 1e-3),
        (torch.float64, -3e-10, 1e-5),
        (torch.float64, 1e-8, 1e-6),
        (torch.float32, 1e-5, 1e-2),
        (torch.float32, -3e-5, 1e-2),
        (torch.float32, 1e-4, 1e-2),
    ],
)
def test_k3_stays_accurate_for_tiny_log_ratios(dtype, logr, rel):
    """k3 = expm1(−x) + x ≈ x²/2 − x³/6 + x⁴/24 for tiny x. The naive (r − 1) − log r with r = exp(−x)
    (``torch.exp(-logr) - 1 + logr``, as often written) rounds r near 1 and keeps that rounding error
    (≈ machine epsilon), far above x²/2 here.

    Limits of the expm1 form (measured): it is relative-accurate while x²/2 ≫ |x|·eps, i.e. for
    |x| ≳ 1e-5 in float32 and |x| ≳ 1e-13 in float64; below that both forms round to ~0."""
    x = torch.tensor([logr], dtype=dtype)
    xv = x.double().item()  # the value actually stored
    series = xv**2 / 2 - xv**3 / 6 + xv**4 / 24
    stable = k3(x).item()
    assert stable == pytest.approx(series, rel=rel)
    naive = (torch.exp(-x) - 1 + x).item()
    assert abs(naive - series) > 10 * abs(stable - series)  # the naive form really is worse here
    assert abs(naive - series) > 0.1 * series  # ...by a lot: it is off by more than 10 %


def _categorical_estimates(p: torch.Tensor, q: torch.Tensor, n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.multinomial(p, n, replacement=True, generator=g)
    logr = p.log()[x] - q.log()[x]
    return {name: est(logr) for name, est in (("k1", k1), ("k2", k2), ("k3", k3))}


@pytest.mark.parametrize(
    "p,q",
    [
        ([0.5, 0.3, 0.1, 0.05, 0.05], [0.2, 0.2, 0.2, 0.2, 0.2]),
        ([0.7, 0.2, 0.1], [0.6, 0.25, 0.15]),
        ([0.05, 0.05, 0.9], [0.4, 0.4, 0.2]),
    ],
)
def test_k1_and_k3_are_unbiased_on_small_categoricals(p, q):
    """Over 200k fixed-seed samples the means of k1 and k3 lie within 4 standard errors of the exact KL."""
    p, q = torch.tensor(p, dtype=torch.float64), torch.tensor(q, dtype=torch.float64)
    true = exact_kl(p.log(), q.log()).item()
    est = _categorical_estimates(p, q, 200_000, seed=3)
    for name in ("k1", "k3"):
        x = est[name]
        se = x.std().item() / math.sqrt(len(x))
        assert abs(x.mean().item() - true) < 4 * se + 1e-12, name
    assert (est["k3"] >= 0).all()
    if true < 0.1:  # close distributions: k3 has far lower variance than k1 (Schulman's table);
        assert est["k3"].std() < 0.5 * est["k1"].std()  # far apart it need not (the third case)


def test_k2_is_biased_when_distributions_are_far_apart():
    p = torch.tensor([0.05, 0.05, 0.9], dtype=torch.float64)
    q = torch.tensor([0.4, 0.4, 0.2], dtype=torch.float64)
    true = exact_kl(p.log(), q.log()).item()
    x = _categorical_estimates(p, q, 200_000, seed=4)["k2"]
    se = x.std().item() / math.sqrt(len(x))
    assert abs(x.mean().item() - true) > 20 * se  # a clear, measurable bias
    k1s = _categorical_estimates(p, q, 1000, seed=5)["k1"]
    assert (k1s < 0).any()  # single k1 values can be negative


# ------------------------------------------------------------------------------- tiny model


@pytest.fixture(scope="module")
def perturbed_bundle(tiny_bundle) -> ModelBundle:
    """A 'tuned' policy: the tiny model with its weights perturbed (same tokenizer)."""
    model = copy.deepcopy(tiny_bundle.model)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.5 * (p.std() if p.numel() > 1 else 1.0))
        model.model.embed_tokens.weight.mul_(8.0)  # sharper, more different next-token distributions
    return ModelBundle(model, tiny_bundle.tokenizer, "tiny-perturbed", tiny_bundle.device, tiny_bundle.dtype)


def test_token_kl_model_with_itself_is_exactly_zero(tiny_bundle):
    res = token_kl(tiny_bundle, tiny_bundle, PROMPT, " great fun")
    assert len(res.table) == len(tiny_bundle.tokenizer(" great fun", add_special_tokens=False).input_ids)
    for k in ("k1", "k2", "k3", "kl_exact", "log_ratio"):
        assert (res.table[k] == 0).all(), k
    assert res.totals == {"k1": 0.0, "k2": 0.0, "k3": 0.0, "kl_exact": 0.0}


def test_token_kl_matches_an_explicit_vocabulary_sum(tiny_bundle, perturbed_bundle):
    res = token_kl(perturbed_bundle, tiny_bundle, PROMPT, " great fun, and more")
    tok = tiny_bundle.tokenizer
    q = tok(PROMPT, add_special_tokens=False).input_ids
    r = tok(" great fun, and more", add_special_tokens=False).input_ids
    ids = torch.tensor([q + r])
    with torch.no_grad():  # an independent forward: no padding, default position ids
        lp = F.log_softmax(perturbed_bundle.model(ids).logits[0].double(), -1)
        lq = F.log_softmax(tiny_bundle.model(ids).logits[0].double(), -1)
    assert (res.table["kl_exact"] >= 0).all() and res.totals["kl_exact"] > 0.01
    for t in range(len(r)):
        pos = len(q) - 1 + t
        assert res.table["kl_exact"][t] == pytest.approx(explicit_kl(lp[pos], lq[pos]), rel=1e-4, abs=1e-6)
        assert res.table["logp_policy"][t] == pytest.approx(lp[pos, r[t]].item(), abs=1e-4)
        assert res.table["logp_ref"][t] == pytest.approx(lq[pos, r[t]].item(), abs=1e-4)
    assert res.totals["kl_exact"] == pytest.approx(res.table["kl_exact"].sum())
    assert res.table["cum_k1"].iloc[-1] == pytest.approx(res.totals["k1"])
    assert res.table["kl_exact"].iloc[res.max_position] == res.table["kl_exact"].max()
    assert len(res.top) == 10 and res.top["policy_p"].is_monotonic_decreasing
    js = res.to_json()
    assert set(js) == {"tokens", "total"} and len(js["tokens"]) == len(r)
    assert set(js["tokens"][0]) == {"token", "logp_policy", "logp_ref", "k1", "k2", "k3", "kl_exact"}


def test_policy_temperature_gives_nonzero_kl_against_itself(tiny_bundle):
    res = token_kl(tiny_bundle, tiny_bundle, PROMPT, " great fun", policy_temperature=0.5)
    assert (res.table["kl_exact"] > 0).all()


def test_generated_response_comes_from_the_policy(tiny_bundle, perturbed_bundle):
    a = token_kl(perturbed_bundle, tiny_bundle, PROMPT, None, max_new_tokens=6, seed=3)
    b = token_kl(perturbed_bundle, tiny_bundle, PROMPT, None, max_new_tokens=6, seed=3)
    assert a.generated and a.response == b.response and 1 <= len(a.table) <= 6


def test_estimator_lab_k1_and_k3_are_unbiased_on_the_tiny_model(tiny_bundle, perturbed_bundle):
    """64 sampled responses: the per-sample differences k1 − exact and k3 − exact average to zero
    within 4 standard errors; k3 and the exact values are never negative."""
    cfg = EstimatorLabConfig(n_samples=64, response_tokens=4, seed=11, batch_size=32)
    res = estimator_lab(perturbed_bundle, tiny_bundle, PROMPT, cfg)
    s = res.samples
    assert len(s) == 64 and res.true_kl > 0.05
    assert (s["kl_exact"] >= 0).all() and (s["k3"] >= 0).all() and (s["k2"] >= 0).all()
    for name in ("k1", "k3"):
        d = s[name] - s["kl_exact"]
        se = d.std() / math.sqrt(len(d))
        assert abs(d.mean()) < 4 * se, (name, d.mean(), se)
    summ = res.summary.set_index("estimator")
    assert summ.loc["kl_exact", "std"] < summ.loc["k1", "std"]
    assert set(summ.columns) >= {"mean", "bias", "std", "bias_rel", "std_rel", "frac_negative"}


# ------------------------------------------------------------------------------- bad input


def test_different_tokenizers_are_refused(tiny_bundle):
    other = copy.deepcopy(tiny_bundle.tokenizer)
    other.add_tokens(["<totally-new-token>"])
    with pytest.raises(KLInputError, match="different tokenizers"):
        check_same_tokenizer(tiny_bundle.tokenizer, other)
    bad = ModelBundle(tiny_bundle.model, other, "other", tiny_bundle.device, tiny_bundle.dtype)
    with pytest.raises(KLInputError, match="different tokenizers"):
        token_kl(tiny_bundle, bad, PROMPT, " hi")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(response=""), "response is empty"),
        (dict(response=" hi", prompt="  "), "prompt is empty"),
        (dict(response=" hi", policy_temperature=0), "temperature"),
        (dict(response=None, max_new_tokens=10_000), "response length"),
    ],
)
def test_bad_inputs_give_clear_messages(tiny_bundle, kwargs, match):
    kw = {"prompt": PROMPT, **kwargs}
    with pytest.raises(KLInputError, match=match):
        token_kl(tiny_bundle, tiny_bundle, kw.pop("prompt"), kw.pop("response"), **kw)


def test_estimator_lab_limits(tiny_bundle):
    with pytest.raises(KLInputError, match="N must be"):
        estimator_lab(tiny_bundle, tiny_bundle, PROMPT, EstimatorLabConfig(n_samples=MAX_SAMPLES + 1))
    with pytest.raises(KLInputError, match="N must be"):
        EstimatorLabConfig(n_samples=0).validate()


def test_no_module_imports_another_modules_private_names():
    """``from rlhf_demo.x import _helper`` is refused: a helper two modules share is public in one of them."""
    import ast
    from pathlib import Path

    import rlhf_demo

    pkg = Path(rlhf_demo.__file__).parent
    bad = {}
    for path in pkg.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rlhf_demo"):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private:
                    bad[str(path.relative_to(pkg))] = private
    assert not bad, bad


@pytest.mark.integration
def test_shipped_example_against_the_base_has_real_kl(default_bundle):
    """What the KL tab shows on its first click: the shipped PPO policy against the base model."""
    from rlhf_demo.models.loading import REGISTRY
    from rlhf_demo.runs.folder import EXAMPLE_RUN

    example = REGISTRY.get(str(EXAMPLE_RUN / "policy"))
    res = token_kl(example, default_bundle, "The movie was", None, max_new_tokens=20, seed=0)
    assert res.totals["kl_exact"] > 0.1 and (res.table["kl_exact"] >= 0).all()
    lab = estimator_lab(example, default_bundle, "The movie was", EstimatorLabConfig(n_samples=4, response_tokens=12))
    assert lab.true_kl > 0.1
