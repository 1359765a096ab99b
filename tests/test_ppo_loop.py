"""The PPO loop on a tiny random Llama (mechanics), and one short run on the real default model."""

import json

import pytest
import torch

from rlhf_demo.data.prompts import PromptError, load_prompts, parse_prompts
from rlhf_demo.decoding.sampling import sample_responses
from rlhf_demo.models.loading import load_model
from rlhf_demo.ppo.config import MAX_STEPS, preset
from rlhf_demo.ppo.forward import forward_response, gather_logprobs
from rlhf_demo.ppo.trainer import PPOTrainer
from rlhf_demo.rewards.functions import RewardError
from rlhf_demo.runs.folder import RunWriter, read_metrics, write_run

PROMPTS = ["The movie was", "I watched this film", "The acting in this", "What a story", "The ending"]


def tiny_cfg(model_dir, **kw):
    base = dict(
        model=str(model_dir),
        batch_size=4,
        num_mini_batches=2,
        ppo_epochs=1,
        steps=1,
        lr=1e-2,
        response_tokens=(4, 4),
        eval_final=False,
        device="cpu",
    )
    base.update(kw)
    return preset("quick-cpu", **base)


def chars(texts):
    """A reward that differs between any two texts of different lengths (the tiny random model's samples
    seldom hold a VADER word: whether the policy moves would depend on the tokens a seed draws)."""
    return [len(t) / 20 for t in texts]


def snapshot(named):
    return {n: p.detach().clone() for n, p in named}


def test_update_changes_policy_not_reference(tiny_model_dir):
    tr = PPOTrainer(tiny_cfg(tiny_model_dir), prompts=PROMPTS, reward_fn=chars)
    lora = snapshot((n, p) for n, p in tr.policy.model.named_parameters() if "lora_" in n)
    base = snapshot((n, p) for n, p in tr.policy.model.named_parameters() if "lora_" not in n)
    vhead = snapshot(tr.value_head.named_parameters())
    assert lora and base
    batch = sample_responses(tr.policy.model, tr.tok, [[100, 200, 300]] * 2, 4, seed=0)
    with torch.no_grad():
        with tr.policy.reference() as ref:
            ref_before = gather_logprobs(forward_response(ref, batch)[0], batch.response_ids)
        pol_before = gather_logprobs(forward_response(tr.policy.model, batch)[0], batch.response_ids)
    assert torch.allclose(ref_before, pol_before)  # LoRA B starts at zero: policy = reference
    records = list(tr.train())
    assert len(records) == 1 and records[0]["step"] == 1
    for key in (
        "reward_mean",
        "reward_std",
        "objective/kl",
        "objective/kl_exact",
        "objective/scores",
        "objective/rlhf_reward",
        "objective/entropy",
        "policy/clipfrac_avg",
        "policy/approxkl_avg",
        "loss/policy_avg",
        "loss/value_avg",
        "val/clipfrac_avg",
        "beta",
        "time_s",
    ):
        assert key in records[0] and records[0][key] == records[0][key], key
    # the trainable weights moved, the base weights did not
    assert any(not torch.equal(p, lora[n]) for n, p in tr.policy.model.named_parameters() if "lora_" in n)
    assert all(torch.equal(p, base[n]) for n, p in tr.policy.model.named_parameters() if "lora_" not in n)
    assert any(not torch.equal(p, vhead[n]) for n, p in tr.value_head.named_parameters())
    with torch.no_grad():
        with tr.policy.reference() as ref:
            ref_after = gather_logprobs(forward_response(ref, batch)[0], batch.response_ids)
        pol_after = gather_logprobs(forward_response(tr.policy.model, batch)[0], batch.response_ids)
    assert torch.equal(ref_after, ref_before)
    assert not torch.allclose(pol_after, pol_before)


@pytest.mark.parametrize("through", [True, False])
def test_value_loss_reaches_the_policy_only_when_asked(tiny_model_dir, through):
    tr = PPOTrainer(tiny_cfg(tiny_model_dir), prompts=PROMPTS)
    torch.nn.init.normal_(tr.value_head.summary.weight)  # zero-initialised heads pass no gradient back at all
    batch = sample_responses(tr.policy.model, tr.tok, [[100, 200, 300]] * 2, 4, seed=0)
    _, values = forward_response(tr.policy.model, batch, tr.value_head, value_grad_to_policy=through)
    values.square().sum().backward()
    lora_grads = [p.grad for n, p in tr.policy.model.named_parameters() if "lora_B" in n]  # (A gets none while B = 0)
    assert tr.value_head.summary.weight.grad.abs().sum() > 0
    assert any(g is not None and g.abs().sum() > 0 for g in lora_grads) == through


def test_full_finetune_keeps_a_frozen_reference(tiny_model_dir):
    tr = PPOTrainer(tiny_cfg(tiny_model_dir, full_finetune=True, lr=1e-3), prompts=PROMPTS, reward_fn=chars)
    ref = tr.policy.frozen_reference
    assert ref is not None and ref is not tr.policy.model
    ref0 = snapshot(ref.named_parameters())
    pol0 = snapshot(tr.policy.model.named_parameters())
    list(tr.train())
    assert all(torch.equal(p, ref0[n]) for n, p in ref.named_parameters())
    assert any(not torch.equal(p, pol0[n]) for n, p in tr.policy.model.named_parameters())


def test_generation_logprobs_match_a_fresh_forward(tiny_model_dir):
    """Old log-probs/values taken from the generation forward equal those of a separate forward."""
    tr = PPOTrainer(tiny_cfg(tiny_model_dir), prompts=PROMPTS)
    ro = tr.rollout()
    with torch.no_grad():
        logits, values = forward_response(tr.policy.model, ro.batch, tr.value_head)
    assert torch.allclose(gather_logprobs(logits, ro.batch.response_ids), ro.logprobs, atol=1e-4)
    assert torch.allclose(values, ro.values, atol=1e-5)
    assert torch.allclose(ro.logprobs, ro.ref_logprobs, atol=1e-4)  # untrained LoRA: policy = reference


def test_rollout_entropy_is_the_sampling_policys(tiny_model_dir):
    """policy/entropy_avg = mean over response tokens of −Σ_v p_v log p_v, p = softmax(logits) of the
    policy that sampled the batch: recomputed here from a plain forward of the whole model, in float64."""
    tr = PPOTrainer(tiny_cfg(tiny_model_dir), prompts=PROMPTS)
    ro = tr.rollout()
    b = ro.batch
    with torch.no_grad():
        out = tr.policy.model(
            input_ids=b.input_ids, attention_mask=b.attention_mask, position_ids=(b.attention_mask.cumsum(-1) - 1).clamp_min(0)
        )
    logits = out.logits[:, b.query_len - 1 : -1].double()  # [B, R, V]
    p = torch.softmax(logits, -1)
    per_token = -(p * p.log()).sum(-1)  # [B, R]
    assert ro.entropy == pytest.approx(float(per_token.mean()), abs=1e-4)
    tr._checked = ro  # the next update uses this batch
    assert tr.step()["policy/entropy_avg"] == ro.entropy


def test_stop_leaves_a_complete_loadable_run_folder(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    calls = {"n": 0}

    def stop():  # asked before each update and after it
        calls["n"] += 1
        return calls["n"] > 3  # a Stop pressed during the second update

    tr = PPOTrainer(tiny_cfg(tiny_model_dir, steps=10, eval_final=True), prompts=PROMPTS, stop=stop)
    records = list(write_run(tr, out))
    assert [r["step"] for r in records] == [1, 2]
    assert tr.status == "stopped" and "after step 2" in tr.message
    # the stopped policy is evaluated on held-out prompts, as a finished run is (its last record)
    assert "eval/reward_mean" in records[-1] and "eval/reward_mean" not in records[0]
    for name in (
        "config.json",
        "metrics.jsonl",
        "samples.jsonl",
        "summary.json",
        "before_after.json",
        "policy/adapter_model.safetensors",
        "policy/adapter_config.json",
        "policy/base_model.txt",
    ):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["steps"] == 2
    df = read_metrics(out)
    assert list(df["step"]) == [1, 2] and {"reward_mean", "reward_std", "objective/kl", "objective/kl_exact"} <= set(df.columns)
    assert json.loads((out / "config.json").read_text())["algo"] == "ppo"
    # the saved adapter loads (merged onto its base) and reproduces the trained policy
    loaded = load_model(str(out / "policy"), device="cpu", dtype=torch.float32)
    batch = sample_responses(loaded.model, loaded.tok if hasattr(loaded, "tok") else loaded.tokenizer, [[100, 200]], 3, seed=1)
    with torch.no_grad():
        a = gather_logprobs(forward_response(loaded.model, batch)[0], batch.response_ids)
        b = gather_logprobs(forward_response(tr.policy.model, batch)[0], batch.response_ids)
    assert torch.allclose(a, b, atol=1e-4)


def test_nan_loss_stops_with_diverged_at_step_k(tiny_model_dir, tmp_path):
    out = tmp_path / "nan"
    n = {"calls": 0}

    def reward(texts):  # a reward model that breaks on its second batch
        n["calls"] += 1
        return [0.5 if n["calls"] == 1 else float("nan") for _ in texts]

    tr = PPOTrainer(tiny_cfg(tiny_model_dir, steps=5), prompts=PROMPTS, reward_fn=reward)
    records = list(write_run(tr, out))
    assert tr.status == "diverged"
    assert tr.message.startswith("diverged at step 2") and "non-finite" in tr.message
    df = read_metrics(out)
    assert list(df["step"]) == [1, 2] and df["reward_mean"].iloc[0] == 0.5
    assert json.loads((out / "summary.json").read_text())["status"] == "diverged"
    assert (out / "policy" / "adapter_model.safetensors").exists()  # last good weights are kept
    assert records[-1].get("diverged") is True


def test_time_budget_and_evaluation_records(tiny_model_dir):
    tr = PPOTrainer(tiny_cfg(tiny_model_dir, steps=50, max_seconds=0.5, eval_final=True, eval_at_start=True), prompts=PROMPTS)
    records = list(tr.train())
    assert records[0]["step"] == 0 and "eval/reward_mean" in records[0]
    assert records[-1]["step"] < 50 and "time budget" in tr.message
    last = records[-1]
    for key in ("eval/reward_mean", "eval/kl", "eval/kl_k1", "eval/distinct2", "eval/reward_sem"):
        assert key in last
    assert tr.before_after and {"query", "reference", "policy", "reference_reward", "policy_reward"} <= set(tr.before_after[0])


def test_no_final_evaluation_means_no_before_after(tiny_model_dir, tmp_path):
    """``eval_final`` off skips the before/after answers too (they are part of the final evaluation, see
    the test above): nothing is sampled after the last update, and the run's card says so cleanly."""
    from rlhf_demo.runs.card import card_text

    tr = PPOTrainer(tiny_cfg(tiny_model_dir, eval_final=False), prompts=PROMPTS)
    records = list(write_run(tr, tmp_path / "run"))
    assert [r["step"] for r in records] == [1] and tr.status == "finished"
    assert tr.before_after == [] and not (tmp_path / "run" / "before_after.json").exists()
    text = card_text(tmp_path / "run")
    assert "No held-out evaluation was recorded." in text and "Before → after" not in text


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"beta": -0.1}, "beta must be between"),
        ({"lr": 0.0}, "lr must be between"),
        ({"lr": 5.0}, "lr must be between"),
        ({"steps": MAX_STEPS + 1}, "steps must be between"),
        ({"steps": 2.5}, "steps must be a whole number"),
        ({"batch_size": 6, "num_mini_batches": 4}, "divisible"),
        ({"response_tokens": "10:5"}, "minimum is above its maximum"),
        ({"response_tokens": "4:x"}, "must be N or MIN:MAX"),
        ({"kl_estimator": "k7"}, "kl_estimator must be one of"),
        ({"beta": float("nan")}, "finite"),
        ({"eval_at_seconds": "60,-1"}, "eval_at_seconds must be between"),
    ],
)
def test_bad_config_is_a_clear_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        preset("quick-cpu", **overrides).validate()


def test_bad_preset_and_setting():
    with pytest.raises(ValueError, match="unknown PPO preset"):
        preset("nope")
    with pytest.raises(ValueError, match="unknown PPO setting"):
        preset("quick-cpu", betta=1)


def test_missing_reward_model_is_clear(tiny_model_dir):
    with pytest.raises(RewardError, match="reward model"):
        PPOTrainer(tiny_cfg(tiny_model_dir, reward="hf:./no/such-reward-model:POSITIVE"), prompts=PROMPTS)


def test_bad_prompts_files_are_clear(tmp_path):
    with pytest.raises(PromptError, match="no prompts"):
        parse_prompts(b"\n\n  \n", "p.txt")
    with pytest.raises(PromptError, match="limit"):
        parse_prompts(b"x" * 3_000_000, "p.txt")
    with pytest.raises(PromptError, match="not valid JSON"):
        parse_prompts(b'{"prompt": "a"}\n{oops', "p.jsonl")
    with pytest.raises(PromptError, match="does not exist"):
        load_prompts(str(tmp_path / "missing.txt"))


def test_existing_run_folder_is_refused_before_loading(tiny_model_dir, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text("{}")
    with pytest.raises(FileExistsError, match="not empty"):
        RunWriter.check(tmp_path / "x")


def test_presets_differ_as_documented():
    q, n, c = preset("quick-cpu"), preset("no-kl"), preset("course")
    assert q.beta > 0 and n.beta == 0 and not n.adaptive_kl
    assert c.model == "lvwerra/gpt2-imdb" and c.reward == "hf:lvwerra/distilbert-imdb:POSITIVE" and c.full_finetune
    assert c.value_grad_to_policy and not q.value_grad_to_policy  # the course keeps TRL's shared value gradient
    for cfg in (q, n, c):
        cfg.validate()


@pytest.mark.integration
def test_short_run_on_the_default_model(real_ppo_run):
    """Two real updates of the quick preset (batch 8: conftest's shared run): metrics are sane, the policy moved."""
    from safetensors.torch import load_file

    run = real_ppo_run.path
    assert real_ppo_run.rc == 0, real_ppo_run.err[-2000:]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2] and json.loads((run / "summary.json").read_text())["status"] == "finished"
    r = records[-1]
    assert real_ppo_run.reward == "0.7*vader-positive + 0.3*on-topic - 0.5*repetition"  # each term in [-1, 1], [0, 1], [0, 1]
    assert -0.7 - 0.5 <= r["reward_mean"] <= 0.7 + 0.3 and r["reward_std"] >= 0
    assert -1 <= r["gold_reward_mean"] <= 1  # VADER alone
    assert abs(records[0]["objective/kl"]) < 1e-3  # first batch: policy = reference (generation vs forward rounding)
    assert 0 < r["policy/entropy_avg"] < 11 and r["response_length"] == 12
    saved = load_file(run / "policy" / "adapter_model.safetensors")
    lora_b = [v for k, v in saved.items() if "lora_B" in k]
    assert lora_b and any((v != 0).any() for v in lora_b)  # initialised at 0: the saved policy moved


@pytest.mark.parametrize("model,lora_layers", [("tiny", 0), ("tiny", 1), ("default", 8)])
def test_bfloat16_policy_scores_old_logprobs_as_its_epochs_do(tiny_model_dir, model, lora_layers):
    """dtype=bfloat16: frozen weights in bf16, LoRA, value head and Adam in float32; π_old comes from the
    same forward the PPO epochs run, so the untrained policy reads KL 0 against the reference and the
    first epoch's ratio is exactly 1. On the real model, cached one-token-at-a-time decoding rounds
    differently in bf16 (its log-probs would differ from the forward's by ~0.01–0.1); the tiny one
    rounds alike either way, so only the real model's case can catch π_old taken from decoding."""
    name = str(tiny_model_dir) if model == "tiny" else "default"
    tr = PPOTrainer(
        tiny_cfg(tiny_model_dir, model=name, dtype="bfloat16", num_mini_batches=1, lora_layers=lora_layers, response_tokens=(8, 8)),
        prompts=PROMPTS,
        reward_fn=chars,
    )
    assert tr.policy.model.get_output_embeddings().weight.dtype == torch.bfloat16
    assert {p.dtype for p in tr.all_params()} == {torch.float32}
    ro = tr.rollout()
    with torch.no_grad():
        logits, values = forward_response(tr.policy.model, ro.batch, tr.value_head, trunk_layer=tr.trunk_layer)
    assert torch.equal(gather_logprobs(logits, ro.batch.response_ids), ro.logprobs)
    assert torch.equal(values, ro.values)
    assert torch.equal(ro.logprobs, ro.ref_logprobs) and float(ro.exact_kl.abs().max()) == 0.0
    tr._checked = ro
    rec = tr.step()
    assert rec["objective/kl"] == 0.0 and rec["val/ratio"] == pytest.approx(1.0, abs=1e-6)
    assert rec["time/old_policy"] > 0


def test_dtype_is_a_clear_choice(tiny_model_dir):
    with pytest.raises(ValueError, match="dtype"):
        tiny_cfg(tiny_model_dir, dtype="float16").validate()
