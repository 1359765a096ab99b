"""The token inspector (issue 26) on the tiny model: ``train`` then ``inspect``; token rewards, GAE,
returns and the whitening recomputed here by hand from the JSON's own fields; DPO's log-probabilities
recomputed by an independent forward (plain transformers + peft) on the ids the JSON lists."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from rlhf_demo.cli.main import main
from rlhf_demo.inspector import inspect_run
from rlhf_demo.ppo.tokens import step_path, undone_steps

PPO_KEYS = {"algo", "step", "episode", "undone", "query", "response", "score", "beta", "gamma", "lam", "cliprange", "tokens"}
TOKEN_KEYS = {
    "token",
    "token_id",
    "logprob_old",
    "logprob_ref",
    "kl",
    "reward",
    "value",
    "return",
    "advantage_raw",
    "advantage",
    "ratio",
    "clipped",
}
SIDE_TOKEN_KEYS = {"token", "token_id", "logp_policy", "logp_ref", "implicit_reward"}
PAIRS = [
    {"prompt": "This movie was", "chosen": " wonderful and moving.", "rejected": " a dull waste of time."},
    {"prompt": "The acting", "chosen": " is superb", "rejected": " is terrible, honestly"},
    {"prompt": "I loved", "chosen": " every minute of it", "rejected": " nothing about it"},
    {"prompt": "The plot", "chosen": " kept me hooked", "rejected": " made no sense at all, sadly"},
]


def inspect_json(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main(["inspect", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def recompute(view: dict) -> tuple[list[float], list[float], list[float]]:
    """Token rewards, GAE advantages and returns from the view's own fields, written out by hand:
    r_t = −β·kl_t (+ score at the last token); δ_t = r_t + γ·V_{t+1} − V_t; A_t = δ_t + γλ·A_{t+1};
    return_t = A_t + V_t (V and A past the last token are 0)."""
    toks, beta, gamma, lam = view["tokens"], view["beta"], view["gamma"], view["lam"]
    n = len(toks)
    rewards = [-beta * t["kl"] for t in toks]
    rewards[-1] += view["score"]
    adv, nxt_a, nxt_v = [0.0] * n, 0.0, 0.0
    for t in reversed(range(n)):
        v = toks[t]["value"]
        nxt_a = rewards[t] + gamma * nxt_v - v + gamma * lam * nxt_a
        adv[t], nxt_v = nxt_a, v
    return rewards, adv, [a + t["value"] for a, t in zip(adv, toks)]


@pytest.fixture(scope="module")
def ppo_run(tiny_model_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("inspect") / "ppo"
    argv = ["train", "--algo", "ppo", "--steps", "2", "--batch-size", "4", "--response-tokens", "6", "--model", str(tiny_model_dir)]
    argv += ["--reward", "length", "--gold-reward", "none", "--no-eval-final", "--ppo-epochs", "2", "--gamma", "0.9"]
    assert main([*argv, "--out", str(run), "--quiet"]) == 0
    return run


def test_ppo_inspect_recomputes_rewards_gae_and_returns(ppo_run, capsys):
    view = inspect_json(capsys, ppo_run, "--step", 2, "--episode", 1)
    assert PPO_KEYS <= set(view) and view["algo"] == "ppo" and view["step"] == 2 and view["episode"] == 1
    assert view["gamma"] == pytest.approx(0.9) and view["undone"] is False and view["updated"] is True
    assert view["tokens"] and all(set(t) == TOKEN_KEYS for t in view["tokens"])
    rewards, adv, returns = recompute(view)
    for t, r, a, g in zip(view["tokens"], rewards, adv, returns):
        assert t["reward"] == pytest.approx(r, abs=1e-3)
        assert t["advantage_raw"] == pytest.approx(a, abs=1e-3)
        assert t["return"] == pytest.approx(g, abs=1e-3)
        assert t["kl"] == pytest.approx(t["logprob_old"] - t["logprob_ref"], abs=1e-4)  # k1, the default estimator
    # the last epoch's clip: active exactly where the ratio left [1 − ε, 1 + ε] on the advantage's side
    eps = view["cliprange"]
    for t in view["tokens"]:
        r, a = t["ratio"], t["advantage"]
        assert t["clipped"] == ((a > 0 and r > 1 + eps) or (a < 0 and r < 1 - eps)), t


def test_ppo_advantages_are_the_batch_whitened_raw_ones(ppo_run, capsys):
    """Whitening over the whole batch (every episode of the update), unbiased variance, as ``loss.whiten``."""
    first = inspect_json(capsys, ppo_run, "--step", 1)
    views = [inspect_json(capsys, ppo_run, "--step", 1, "--episode", i) for i in range(first["episodes"])]
    raw = [t["advantage_raw"] for v in views for t in v["tokens"]]
    mean = sum(raw) / len(raw)
    std = math.sqrt(sum((x - mean) ** 2 for x in raw) / (len(raw) - 1))
    got = [t["advantage"] for v in views for t in v["tokens"]]
    assert got == pytest.approx([(x - mean) / std for x in raw], abs=1e-3)


def test_ppo_defaults_text_table_and_errors(ppo_run, tmp_path, capsys):
    last = inspect_json(capsys, ppo_run)
    assert (last["step"], last["episode"], last["steps"]) == (2, 0, [1, 2])
    assert main(["inspect", str(ppo_run), "--step", "1"]) == 0
    out = capsys.readouterr().out
    assert "algo: ppo" in out and "advantage_raw" in out and "clipped" in out
    for argv, match in [
        (["--step", "3"], "step 3 is out of range: this run's stored updates are 1–2"),
        (["--episode", "4"], "episode 4 is out of range: this one has episodes 0–3"),
    ]:
        assert main(["inspect", str(ppo_run), *argv]) == 2
        assert match in capsys.readouterr().err
    assert main(["inspect", str(tmp_path)]) == 2
    assert "no run" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a run folder"):
        inspect_run(tmp_path)
    assert step_path(ppo_run, 2).stat().st_size < 20_000


def test_an_old_run_without_a_store_says_so(ppo_run, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text((ppo_run / "config.json").read_text())
    with pytest.raises(ValueError, match="has no per-token store"):
        inspect_run(old)


def test_undone_updates_are_read_from_the_metrics(tmp_path):
    rows = [
        {"step": 1},
        {"step": 2, "kl_budget/rollback": 0},
        {"step": 3, "kl_budget/rollback": 1},
        {"step": 4, "kl_budget/undone_at_check": 1},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert undone_steps(tmp_path) == {2, 4}


def test_a_rollback_batch_is_stored_without_an_update(tiny_model_dir, tmp_path, capsys):
    """A KL budget crossed at once: update 2's batch undoes update 1 (marked undone) and trains nothing."""
    run = tmp_path / "kl"
    argv = [
        "train",
        "--algo",
        "ppo",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--num-mini-batches",
        "1",
        "--response-tokens",
        "4",
        "--model",
        str(tiny_model_dir),
    ]
    argv += ["--reward", "length", "--gold-reward", "none", "--no-eval-final", "--kl-budget", "1e-6", "--lr", "0.01"]
    assert main([*argv, "--out", str(run), "--quiet"]) == 0
    rec = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    if not rec[1].get("kl_budget/rollback"):
        pytest.skip("the tiny model's first update did not cross the budget")
    one, two = inspect_json(capsys, run, "--step", 1), inspect_json(capsys, run, "--step", 2)
    assert one["undone"] is True and one["updated"] is True
    assert two["updated"] is False and all(t["ratio"] is None and t["clipped"] is None for t in two["tokens"])


@pytest.fixture(scope="module")
def dpo_run(tiny_model_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("inspect-dpo")
    prefs = base / "prefs.jsonl"
    prefs.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    run = base / "dpo"
    argv = ["train", "--algo", "dpo", "--steps", "2", "--preferences", str(prefs), "--model", str(tiny_model_dir)]
    argv += ["--batch-size", "2", "--max-length", "48", "--beta", "0.2", "--lr", "0.01", "--out", str(run), "--quiet"]
    assert main(argv) == 0
    return run


def independent_logps(model, prompt_ids: list[int], ids: list[int]) -> list[float]:
    x = torch.tensor([prompt_ids + ids])
    with torch.no_grad():
        logits = model(input_ids=x).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    return [float(logp[len(prompt_ids) - 1 + t, tok]) for t, tok in enumerate(ids)]


def test_dpo_inspect_matches_an_independent_forward(dpo_run, tiny_model_dir, capsys):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert [json.loads(line) for line in (dpo_run / "pairs.jsonl").read_text().splitlines()] == PAIRS
    view = inspect_json(capsys, dpo_run, "--pair", 1)
    assert {"algo", "step", "pair", "beta", "prompt", "prompt_ids", "chosen", "rejected", "margin"} <= set(view)
    assert (view["algo"], view["pair"], view["beta"], view["step"]) == ("dpo", 1, 0.2, 2)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    ref = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    policy = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32), dpo_run / "policy").eval()
    for side in ("chosen", "rejected"):
        part = view[side]
        ids = [t["token_id"] for t in part["tokens"]]
        assert all(set(t) == SIDE_TOKEN_KEYS for t in part["tokens"])
        # the ids TRL scored: prompt + side + EOS, tokenised as one text, the EOS last
        assert view["prompt_ids"] + ids == tok(PAIRS[1]["prompt"] + PAIRS[1][side] + tok.eos_token)["input_ids"]
        assert ids[-1] == tok.eos_token_id and part["text"] == tok.decode(ids)
        assert [t["logp_policy"] for t in part["tokens"]] == pytest.approx(independent_logps(policy, view["prompt_ids"], ids), abs=1e-3)
        assert [t["logp_ref"] for t in part["tokens"]] == pytest.approx(independent_logps(ref, view["prompt_ids"], ids), abs=1e-3)
        for t in part["tokens"]:
            assert t["implicit_reward"] == pytest.approx(0.2 * (t["logp_policy"] - t["logp_ref"]), abs=1e-5)
        assert sum(t["implicit_reward"] for t in part["tokens"]) == pytest.approx(part["reward"], abs=1e-3)
    assert view["margin"] == pytest.approx(view["chosen"]["reward"] - view["rejected"]["reward"], abs=1e-3)
    assert view["chosen"]["reward"] != 0.0  # the policy moved away from the reference


def test_dpo_refuses_other_steps_and_pairs(dpo_run, capsys):
    assert main(["inspect", str(dpo_run), "--pair", "4"]) == 2
    assert "pair 4 is out of range: this one has pairs 0–3" in capsys.readouterr().err
    assert main(["inspect", str(dpo_run), "--step", "3"]) == 2
    assert "step 3 is out of range: its kept steps are 1–2; without a step, its saved policy (step 2)" in capsys.readouterr().err
    assert main(["inspect", str(dpo_run), "--step", "1", "--pair", "2"]) == 2
    assert "step 1's batch has pairs 0–1" in capsys.readouterr().err


def test_dpo_step_store_is_what_trl_logged(dpo_run, tiny_model_dir, capsys):
    """Each kept step, pair by pair: the batch means of Σ logp_policy and of β·(Σ logp_policy − Σ logp_ref)
    are TRL's logged ``logps/*`` and ``rewards/*`` of that step; the reference's per-token values are
    the base model's (an independent forward), and so are step 1's policy values (LoRA starts at the base);
    the ids are the listed pair's, as TRL tokenises it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    records = {r["step"]: r for r in map(json.loads, (dpo_run / "metrics.jsonl").read_text().splitlines()) if r.get("step")}
    for step in (1, 2):
        views = [inspect_json(capsys, dpo_run, "--step", step, "--pair", b) for b in range(2)]
        assert [v["batch_pair"] for v in views] == [0, 1] and views[0]["batch"] == [v["pair"] for v in views]
        for v in views:
            assert (v["algo"], v["step"], v["source"], v["reference"], v["beta"]) == ("dpo", step, "step", "precomputed", 0.2)
            pair = PAIRS[v["pair"]]
            assert v["prompt"] == pair["prompt"]
            for side in ("chosen", "rejected"):
                part, ids = v[side], [t["token_id"] for t in v[side]["tokens"]]
                assert all(set(t) == SIDE_TOKEN_KEYS for t in part["tokens"])
                assert v["prompt_ids"] + ids == tok(pair["prompt"] + pair[side] + tok.eos_token)["input_ids"]
                ref = independent_logps(base, v["prompt_ids"], ids)
                assert [t["logp_ref"] for t in part["tokens"]] == pytest.approx(ref, abs=1e-4)
                if step == 1:
                    assert [t["logp_policy"] for t in part["tokens"]] == pytest.approx(ref, abs=1e-4)
                assert sum(t["implicit_reward"] for t in part["tokens"]) == pytest.approx(part["reward"], abs=1e-4)
            assert v["margin"] == pytest.approx(v["chosen"]["reward"] - v["rejected"]["reward"], abs=1e-4)
        rec = records[step]
        for side in ("chosen", "rejected"):
            logps = [sum(t["logp_policy"] for t in v[side]["tokens"]) for v in views]
            assert sum(logps) / 2 == pytest.approx(rec[f"logps/{side}"], abs=1e-3)
            assert sum(v[side]["reward"] for v in views) / 2 == pytest.approx(rec[f"rewards/{side}"], abs=1e-4)
    assert views[0]["chosen"]["reward"] != 0.0  # step 2: the policy has moved
    assert (dpo_run / "tokens" / "step-0002.pt").stat().st_size < 20_000


def test_dpo_while_training_shows_the_last_step(dpo_run, tmp_path):
    """No summary yet (the run still trains): without a step, the last step kept; before the first one, one line."""
    import shutil

    live = tmp_path / "live"
    live.mkdir()
    for name in ("config.json", "pairs.jsonl"):
        shutil.copy(dpo_run / name, live / name)
    with pytest.raises(ValueError, match="has not finished a step yet"):
        inspect_run(live, pair=0)
    shutil.copytree(dpo_run / "tokens", live / "tokens")
    view = inspect_run(live, pair=1)
    assert (view["source"], view["step"], view["batch_pair"], view["steps"]) == ("step", 2, 1, [1, 2])


def test_dpo_saved_policy_through_the_apps_registry(dpo_run, tmp_path):
    """The app's loader: the policy and its reference come from the model registry (counted there), with
    a progress line, and give the command line's numbers."""
    from rlhf_demo.models.loading import ModelRegistry
    from rlhf_demo.ui.context import AppContext
    from rlhf_demo.ui.inspector import loader

    registry, said = ModelRegistry(max_models=3), []
    ctx = AppContext(registry=registry, runs_dir=dpo_run.parent)
    view = inspect_run(dpo_run, pair=2, load=loader(ctx, None, lambda f, desc: said.append(desc)))
    plain = inspect_run(dpo_run, pair=2)
    assert view["source"] == plain["source"] == "saved policy"
    assert said[0] == "loading the run's policy…" and "loading the reference model…" in said
    assert str(dpo_run / "policy") in registry.loaded() and len(registry.loaded()) == 2
    for side in ("chosen", "rejected"):
        got, want = view[side]["tokens"], plain[side]["tokens"]
        assert [t["logp_policy"] for t in got] == pytest.approx([t["logp_policy"] for t in want], abs=1e-4)
        assert [t["logp_ref"] for t in got] == pytest.approx([t["logp_ref"] for t in want], abs=1e-4)


def test_api_inputs_and_gate(tmp_path):
    """``/inspect``'s inputs: '' or a whole number; a run only among those the session may see."""
    from rlhf_demo.ui.api_inspect import visible_run, whole
    from rlhf_demo.ui.context import AppContext

    assert (whole("step", ""), whole("step", None), whole("step", "3"), whole("step", 2)) == (None, None, 3, 2)
    with pytest.raises(ValueError, match="step must be a whole number"):
        whole("step", "two")
    ctx = AppContext(runs_dir=tmp_path / "runs")
    example = visible_run(ctx, "example-ppo", None)
    assert example is not None and example.name == "example-ppo"
    assert visible_run(ctx, "../example-ppo", None) is None and visible_run(ctx, "nobody", None) is None
    shown = inspect_run(example)  # the shipped example carries the store: its last update
    assert shown["algo"] == "ppo" and shown["step"] == 30 and len(shown["tokens"]) > 0
    old = tmp_path / "before-the-store"  # a run from before the store says so
    shutil.copytree(example, old, ignore=shutil.ignore_patterns("tokens", "policy"))
    with pytest.raises(ValueError, match="no per-token store"):
        inspect_run(old)
