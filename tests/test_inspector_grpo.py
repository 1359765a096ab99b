"""GRPO's token inspector (issue 26) on the tiny model: a 2-step run through ``train`` writes the per-token
store; ``inspect --json`` gives the schema; each group's mean, std and advantages recomputed here by hand
from the completions' rewards (TRL 1.16: A = (r − mean) / (std + 1e-4), std with Bessel's correction,
``scale_rewards="group"`` its default), the rewards from the texts, k3 from logp and logp_ref, and the
stored k3 (weighed by π/π_old: TRL's ``use_bias_correction_kl``, on by default) against the KL that TRL
itself logged for that step (so ``logp`` is the loss's)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rlhf_demo.cli.main import main
from rlhf_demo.grpo.tokens import step_path, step_table
from rlhf_demo.inspector import inspect_run
from rlhf_demo.runs.folder import read_metrics

G, GROUPS, R = 3, 2, 5
TOP_KEYS = {"algo", "step", "episode", "beta", "cliprange", "scale_rewards", "group", "steps", "episodes"}
TOKEN_KEYS = {"token", "token_id", "logp", "logp_old", "logp_ref", "kl", "ratio"}


@pytest.fixture(scope="module")
def grpo_run(tiny_model_dir, tmp_path_factory):
    """2 optimizer steps on one batch (μ = 2): step 2 trains again on step 1's completions."""
    run = tmp_path_factory.mktemp("inspect-grpo") / "grpo"
    argv = ["train", "--algo", "grpo", "--steps", "2", "--batch-size", str(G * GROUPS), "--num-generations", str(G)]
    argv += ["--num-iterations", "2", "--response-tokens", str(R), "--model", str(tiny_model_dir), "--reward", "length"]
    argv += ["--eval-every", "0", "--no-eval-at-start", "--kl-stop", "0", "--max-seconds", "0", "--beta", "0.1", "--lr", "0.05"]
    assert main([*argv, "--out", str(run), "--quiet"]) == 0
    return run


def inspect_json(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main(["inspect", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_two_steps_write_the_store_and_inspect_gives_the_schema(grpo_run, capsys):
    assert step_path(grpo_run, 1).is_file() and step_path(grpo_run, 2).is_file()
    view = inspect_json(capsys, grpo_run, "--step", 2, "--episode", 1)
    assert TOP_KEYS <= set(view) and view["algo"] == "grpo" and view["step"] == 2 and view["episode"] == 1
    assert view["beta"] == pytest.approx(0.1) and view["scale_rewards"] == "group" and view["episodes"] == GROUPS
    group = view["group"]
    assert set(group) == {"prompt", "mean", "std", "completions"} and len(group["completions"]) == G
    for c in group["completions"]:
        assert set(c) == {"text", "reward", "advantage", "tokens"} and len(c["tokens"]) == R  # EOS banned: full length
        assert all(set(t) == TOKEN_KEYS and t["logp"] < 0 and t["logp_ref"] < 0 for t in c["tokens"])
    assert inspect_run(grpo_run)["step"] == 2  # no step: the last
    with pytest.raises(ValueError, match="group 2 is out of range"):
        inspect_run(grpo_run, step=1, episode=GROUPS)
    with pytest.raises(ValueError, match="stored steps are 1–2"):
        inspect_run(grpo_run, step=3)


def test_group_mean_std_advantage_and_rewards_recomputed_by_hand(grpo_run):
    df = read_metrics(grpo_run)
    logged = df[df["step"] == 1].iloc[0]
    all_rewards = []
    for step in (1, 2):
        for g in range(GROUPS):
            group = inspect_run(grpo_run, step=step, episode=g)["group"]
            rewards = [c["reward"] for c in group["completions"]]
            # the reward function ("length": words / 10) on prompt + completion, as the reward scored it
            assert rewards == pytest.approx([len((group["prompt"] + c["text"]).split()) / 10 for c in group["completions"]], abs=1e-6)
            mean = sum(rewards) / G
            std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / (G - 1))
            assert group["mean"] == pytest.approx(mean, abs=1e-4) and group["std"] == pytest.approx(std, abs=1e-4)
            # TRL computes in float32: one ulp of the mean (1.2e-7 × |mean|) divided by std + 1e-4, which a
            # group of equal rewards (std 0) magnifies 10 000 times
            tol = 1e-4 + 1.2e-7 * max(1.0, abs(mean)) / (std + 1e-4)
            for c in group["completions"]:
                assert c["advantage"] == pytest.approx((c["reward"] - mean) / (std + 1e-4), abs=tol)
            if step == 1:
                all_rewards += rewards
    assert logged["reward_mean"] == pytest.approx(sum(all_rewards) / len(all_rewards), abs=1e-5)  # TRL's batch reward


def test_k3_recomputed_and_its_mean_is_the_kl_trl_logged(grpo_run):
    df = read_metrics(grpo_run)
    logp = {}
    for step in (1, 2):
        k3s = []
        for g in range(GROUPS):
            for c in inspect_run(grpo_run, step=step, episode=g)["group"]["completions"]:
                for t in c["tokens"]:
                    d = t["logp_ref"] - t["logp"]
                    assert t["kl"] == pytest.approx(math.exp(d) - d - 1, abs=1e-5)
                    assert t["ratio"] == pytest.approx(math.exp(t["logp"] - t["logp_old"]), rel=1e-5)
                    k3s.append(t["ratio"] * t["kl"])  # TRL's per_token_kl with use_bias_correction_kl
                    logp.setdefault(step, []).append((t["logp"], t["logp_old"]))
        trl_kl = df[df["step"] == step].iloc[0]["kl"]  # TRL's masked mean of its per_token_kl at this step
        assert inspect_run(grpo_run, step=step)["use_bias_correction_kl"] is True
        assert sum(k3s) / len(k3s) == pytest.approx(trl_kl, rel=1e-3, abs=1e-7)
        assert step == 1 or trl_kl > 1e-5  # step 2: the policy has moved off the reference
    # step 1: π = π_old (ratio 1); step 2 trains on the same batch with the moved policy: π_old kept, π moved
    assert all(lp == pytest.approx(old, abs=1e-4) for lp, old in logp[1])
    assert [old for _, old in logp[2]] == pytest.approx([old for _, old in logp[1]], abs=1e-6)
    assert max(abs(a[0] - b[0]) for a, b in zip(logp[1], logp[2])) > 1e-4


def test_without_a_reference_kl_is_null():
    """β = 0: TRL computes no reference; the store keeps NaN and the view shows null."""
    ids = torch.tensor([[5, 6], [7, 8]])
    table = step_table(
        token_ids=ids,
        tokens=[["a", "b"], ["c", "d"]],
        mask=torch.tensor([[1, 1], [1, 0]]),
        prompts=["P", "P"],
        completions=["ab", "c"],
        rewards=torch.tensor([1.0, 0.0]),
        advantages=torch.tensor([0.7071, -0.7071]),
        logp=torch.tensor([[-1.0, -2.0], [-0.5, -9.0]]),
        logp_old=None,
        logp_ref=None,
        scalars={"num_generations": 2, "beta": 0.0},
    )
    assert torch.isnan(table["kl"][0]).all() and table["logp_old"].equal(table["logp"])
    assert table["logp"][1, 1] == 0 and table["token"] == [["a", "b"], ["c"]]  # zero and cut past the length
    assert table["mean"].tolist() == [0.5] and table["std"].tolist() == pytest.approx([math.sqrt(0.5)])
