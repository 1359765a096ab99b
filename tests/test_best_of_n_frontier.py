"""Best-of-N on the Runs frontier: the unbiased expected-best estimator against brute-force enumeration,
the shipped asset (``scripts/make_best_of_n.py``) and the frontier's points."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from rlhf_demo.decoding.best_of_n import kl_bound
from rlhf_demo.runs.compare import BEST_OF_N, best_of_n_points, expected_best_of_n


def test_expected_best_of_n_equals_the_mean_best_over_every_subset():
    scores = [0.3, -1.0, 2.0, 0.3, 5.0, 1.1, -0.2]  # a tie and negatives on purpose
    for n in range(1, len(scores) + 1):
        subsets = list(itertools.combinations(scores, n))
        brute = sum(max(s) for s in subsets) / len(subsets)
        assert expected_best_of_n(scores, n) == pytest.approx(brute, abs=1e-12)
    assert expected_best_of_n(scores, 1) == pytest.approx(sum(scores) / len(scores))
    assert expected_best_of_n(scores, len(scores)) == 5.0
    with pytest.raises(ValueError):
        expected_best_of_n(scores, len(scores) + 1)


def test_the_shipped_asset_bounds_gains_and_how_it_was_made():
    data = json.loads(BEST_OF_N.read_text())
    assert {"machine", "date", "model", "prompts", "seed", "samples_per_prompt", "reward"} <= set(data)
    assert data["samples_per_prompt"] == 64 and data["reward"] == "vader-positive" and data["prompts"] >= 8
    pts = best_of_n_points()
    assert list(pts["n"]) == [2, 4, 8, 16, 32, 64]
    for n, bound in zip(pts["n"], pts["kl_bound"]):
        assert bound == pytest.approx(math.log(n) - (n - 1) / n, abs=1e-4) and bound == pytest.approx(kl_bound(n), abs=1e-4)
    gains = list(pts["gain"])
    assert all(b > a for a, b in zip(gains, gains[1:])) and gains[0] > 0  # more samples, a better best
    assert best_of_n_points(BEST_OF_N.with_name("missing.json")).empty


def test_the_frontier_draws_best_of_n_at_its_bound_beside_pi_star():
    import pandas as pd

    from rlhf_demo.plots.runs import frontier_figure

    pts = pd.DataFrame([{"run": "base model", "algo": "base", "step": 0, "reward": 0.1, "kl": 0.0}])
    bon = pd.DataFrame({"n": [2, 8], "gain": [0.14, 0.42], "kl_bound": [kl_bound(2), kl_bound(8)]})
    fig = frontier_figure(pts, target=(0.4, 6.0), base_reward=0.1, best_of_n=bon)
    trace = next(t for t in fig.data if t.name.startswith("best-of-N"))
    assert list(trace.text) == ["N=2", "N=8"]
    assert list(trace.x) == pytest.approx([kl_bound(2), kl_bound(8)]) and list(trace.y) == pytest.approx([0.24, 0.52])
    assert not any(t.name.startswith("best-of-N") for t in frontier_figure(pts, base_reward=0.1).data)
