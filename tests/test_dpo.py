"""DPO through trl.DPOTrainer on a tiny random Llama: the logged loss against an independent
computation, parameters moving while the reference stays put, stop, bad data, the run folder."""

from __future__ import annotations

import json
import math
import threading

import pytest
import torch
import torch.nn.functional as F

from rlhf_demo.dpo.config import DPOConfig
from rlhf_demo.dpo.pairs import usable_pairs
from rlhf_demo.dpo.trainer import DPOTrainer
from rlhf_demo.models.loading import load_model
from rlhf_demo.runs.folder import read_metrics, write_run

PAIRS = [
    {"prompt": "This movie was", "chosen": " wonderful and moving.", "rejected": " a dull waste of time."},
    {"prompt": "The acting", "chosen": " is superb", "rejected": " is terrible, honestly"},
]


def seq_logp(model, tok, prompt: str, response: str) -> float:
    """Σ log π(response token | prefix) over the response tokens and the appended EOS, done by hand."""
    p_ids = tok(prompt)["input_ids"]
    full = tok(prompt + response + tok.eos_token)["input_ids"]
    assert full[: len(p_ids)] == p_ids
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([full])).logits[0].float()  # [T, V]
    logp = F.log_softmax(logits, -1)
    return sum(float(logp[t - 1, full[t]]) for t in range(len(p_ids), len(full)))


def settings_for(model_dir, **kw) -> DPOConfig:
    base = dict(
        model=str(model_dir),
        max_length=64,
        batch_size=2,
        eval_every=0,
        eval_at_start=False,
        seed=0,
        epochs=1.0,
        kl_stop=0.0,
        max_seconds=0.0,
        lr=5e-4,
    )
    base.update(kw)
    return DPOConfig.preset("quick-cpu", **base)


def run_all(cfg, pairs, **kw) -> tuple[DPOTrainer, list[dict]]:
    tr = DPOTrainer(cfg, pairs, **kw)
    return tr, list(tr.train())


def test_logged_loss_matches_hand_computed_dpo_loss(tiny_model_dir):
    beta = 1.0
    policy = load_model(str(tiny_model_dir), device="cpu", dtype=torch.float32)
    reference = load_model(str(tiny_model_dir), device="cpu", dtype=torch.float32)
    torch.manual_seed(1)
    with torch.no_grad():  # make the reference differ from the policy, so the log-ratios are not 0
        for p in reference.model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    tok = policy.tokenizer
    ref_before = {k: v.clone() for k, v in reference.model.state_dict().items()}
    pol_before = {k: v.clone() for k, v in policy.model.state_dict().items()}

    h, chosen_ratio, logp_c = [], [], []
    for pair in PAIRS:
        lc, lr = seq_logp(policy.model, tok, pair["prompt"], pair["chosen"]), seq_logp(policy.model, tok, pair["prompt"], pair["rejected"])
        rc, rr = (
            seq_logp(reference.model, tok, pair["prompt"], pair["chosen"]),
            seq_logp(reference.model, tok, pair["prompt"], pair["rejected"]),
        )
        h.append((lc - rc) - (lr - rr))
        chosen_ratio.append(lc - rc)
        logp_c.append(lc)
    expected = sum(-math.log(1 / (1 + math.exp(-beta * x))) for x in h) / len(h)
    assert abs(expected - math.log(2)) > 0.01, "the hand-worked case must not be the trivial log 2"

    settings = settings_for(tiny_model_dir, beta=beta, steps=1, full_finetune=True, lr=1e-3)
    tr, recs = run_all(settings, PAIRS, bundle=policy, reference=reference.model)
    step = [r for r in recs if r.get("step") == 1][0]
    assert step["loss"] == pytest.approx(expected, abs=2e-4)
    assert step["rewards/chosen"] == pytest.approx(beta * sum(chosen_ratio) / 2, abs=2e-4)
    assert step["rewards/margins"] == pytest.approx(beta * sum(h) / 2, abs=2e-4)
    assert step["logps/chosen"] == pytest.approx(sum(logp_c) / 2, abs=2e-3)
    assert tr.status == "finished"
    # the policy moved, the reference did not
    changed = [k for k, v in policy.model.state_dict().items() if not torch.equal(v, pol_before[k])]
    assert changed
    assert all(torch.equal(v, ref_before[k]) for k, v in reference.model.state_dict().items())


def test_lora_changes_adapter_not_reference(tiny_model_dir, tmp_path):
    policy = load_model(str(tiny_model_dir), device="cpu", dtype=torch.float32)
    base_before = {k: v.clone() for k, v in policy.model.state_dict().items()}
    ids = torch.tensor([policy.tokenizer("This movie was great")["input_ids"]])
    with torch.no_grad():
        logits_before = policy.model(input_ids=ids).logits.clone()
    settings = settings_for(tiny_model_dir, steps=3, lr=5e-3)
    tr = DPOTrainer(settings, PAIRS * 2, bundle=policy)
    recs = list(write_run(tr, tmp_path / "run"))
    steps = [r for r in recs if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert all(
        k in steps[0]
        for k in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected", "time_s")
    )
    assert steps[-1]["rewards/margins"] > 0  # the same pairs again and again: the margin grows
    final = [r for r in recs if "eval/kl" in r][-1]  # evaluation at the last step
    assert final["step"] == 3 and math.isfinite(final["eval/kl"]) and final["eval/kl"] > 0
    # reference = adapter disabled = the untouched base weights
    peft_model = tr.policy.model
    with torch.no_grad(), peft_model.disable_adapter():
        assert torch.allclose(peft_model(input_ids=ids).logits, logits_before, atol=1e-5)
        assert not torch.allclose(peft_model(input_ids=ids).logits, peft_model(input_ids=ids).logits + 1)
    with torch.no_grad():
        assert not torch.allclose(peft_model(input_ids=ids).logits, logits_before, atol=1e-5)
    for k, v in peft_model.get_base_model().state_dict().items():
        if "lora_" not in k:
            orig = k.replace(".base_layer", "")
            assert torch.equal(v, base_before[orig]), k
    # the saved adapter loads back as a policy that differs from the base model
    assert (tmp_path / "run" / "policy" / "adapter_config.json").exists()
    assert (tmp_path / "run" / "policy" / "base_model.txt").read_text().strip() == str(tiny_model_dir.resolve())
    reloaded = load_model(str(tmp_path / "run" / "policy"), device="cpu", dtype=torch.float32)
    with torch.no_grad():
        assert torch.allclose(reloaded.model(input_ids=ids).logits, peft_model(input_ids=ids).logits, atol=1e-4)


def test_stop_ends_after_the_current_step(tiny_model_dir, tmp_path):
    stop = threading.Event()
    settings = settings_for(tiny_model_dir, steps=200, lr=1e-3)
    seen = []
    tr = DPOTrainer(settings, PAIRS * 4, stop=stop.is_set)
    for rec in write_run(tr, tmp_path / "run"):
        seen.append(rec)
        if rec.get("step") == 2:
            stop.set()
    steps = [r["step"] for r in seen if "loss" in r]
    assert steps[-1] <= 3
    assert tr.status == "stopped"
    assert (tmp_path / "run" / "policy" / "adapter_model.safetensors").exists()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "stopped"


def test_closing_the_generator_stops_training(tiny_model_dir):
    gen = DPOTrainer(settings_for(tiny_model_dir, steps=200), PAIRS).train()
    for rec in gen:
        if rec.get("step") == 1:
            break
    gen.close()  # joins the worker thread: returns only once training has stopped
    assert not any(t.name == "dpo-train" and t.is_alive() for t in threading.enumerate())


def test_no_usable_examples(tiny_model_dir, tiny_bundle):
    long = [{"prompt": "word " * 40, "chosen": " good", "rejected": " bad"}]
    kept, dropped = usable_pairs(long + PAIRS, tiny_bundle.tokenizer, 16)
    assert len(kept) == 2 and dropped == 1
    with pytest.raises(ValueError, match="no usable examples"):
        DPOTrainer(settings_for(tiny_model_dir, max_length=16, steps=1), long)
    with pytest.raises(ValueError, match="no usable examples"):
        DPOTrainer(settings_for(tiny_model_dir, steps=1), [])


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(beta=0), "beta"),
        (dict(lr=1.0), "lr"),
        (dict(steps=10**6), "steps"),
        (dict(loss_type="nope"), "loss_type must be one of"),
        (dict(batch_size=0), "batch_size"),
        (dict(max_length=2), "max_length"),
        (dict(kl_stop=-1), "kl_stop"),
        (dict(loss_type="exo_pair"), "label_smoothing > 0"),
    ],
)
def test_settings_reject_nonsense(bad, message):
    with pytest.raises(ValueError, match=message):
        DPOConfig.preset("quick-cpu", **bad).validate()


def test_run_folder(tiny_model_dir, tmp_path):
    settings = settings_for(tiny_model_dir, steps=2, eval_every=1, eval_at_start=True)
    tr = DPOTrainer(settings, PAIRS)
    list(write_run(tr, tmp_path / "run", preset="quick-cpu"))
    assert tr.status == "finished"
    df = read_metrics(tmp_path / "run")
    assert list(df["step"]) == [0, 1, 2]
    for col in (
        "loss",
        "rewards/margins",
        "rewards/accuracies",
        "eval/reward_mean",
        "eval/kl",
        "eval/kl_k1",
        "eval/distinct2",
        "eval/reward_sem",
        "time_s",
        "beta",
    ):
        assert col in df.columns, col
    assert df["eval/kl"].notna().all()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["algo"] == "dpo"
    assert json.loads((tmp_path / "run" / "before_after.json").read_text())
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "finished"
    assert (tmp_path / "run" / "policy" / "adapter_config.json").exists()
    assert (tmp_path / "run" / "samples.jsonl").read_text().strip()


@pytest.fixture
def small_eval(monkeypatch):
    """The trainer's held-out evaluation on 8 prompts × 2 samples instead of 32 × 2: the two KL-stop tests
    below evaluate 15 times, ~1.7 s each on the tiny model (measured: 90 % of their time), and what they
    check (the KL rising step by step, which step is restored, which steps are evaluated) holds for any
    fixed evaluation protocol."""
    from rlhf_demo.evaluate import EvalConfig

    small = EvalConfig(n_prompts=8)
    monkeypatch.setattr("rlhf_demo.dpo.trainer.EvalConfig", lambda: small)
    return small


def test_kl_stop_restores_the_last_policy_under_the_target(tiny_model_dir, small_eval):
    from rlhf_demo.evaluate import evaluate_policy
    from rlhf_demo.rewards.functions import make_reward

    base = dict(steps=3, eval_every=1, lr=5e-3)
    _, free = run_all(settings_for(tiny_model_dir, **base), PAIRS * 2)
    kls = [r["eval/kl"] for r in free if "eval/kl" in r]
    assert kls[0] < kls[1] < kls[2]
    target = (kls[1] + kls[2]) / 2
    tr, recs = run_all(settings_for(tiny_model_dir, kl_stop=target, **base), PAIRS * 2)
    assert [r["step"] for r in recs if "loss" in r] == [1, 2, 3]
    assert tr.status == "finished" and "restored the policy of step 2" in tr.message
    assert tr.restored["step"] == 2 and tr.restored["eval/kl"] == pytest.approx(kls[1])
    again = evaluate_policy(tr.policy.model, load_model(str(tiny_model_dir)).tokenizer, make_reward("vader-positive"), small_eval)
    assert again["kl"] == pytest.approx(kls[1], rel=1e-4)


def test_evaluation_turns_every_step_near_the_kl_target(tiny_model_dir, small_eval):
    """eval_every=2 alone evaluates at steps 2 and 4 (the last); once the held-out KL passes
    fine_eval_from × target, every step is evaluated (so the kept policy is the last one under it)."""
    base = dict(steps=4, eval_every=2, lr=5e-3)
    _, free = run_all(settings_for(tiny_model_dir, **base), PAIRS * 2)
    kl2 = [r["eval/kl"] for r in free if "eval/kl" in r and r["step"] == 2][0]
    assert kl2 > 0
    # target far above: KL at step 2 passes half of it only when fine_eval_from is small enough
    _, near = run_all(settings_for(tiny_model_dir, kl_stop=kl2 * 100, fine_eval_from=0.5 / 100, **base), PAIRS * 2)
    _, far = run_all(settings_for(tiny_model_dir, kl_stop=kl2 * 100, fine_eval_from=1.0, **base), PAIRS * 2)
    evals = lambda recs: [r["step"] for r in recs if "eval/kl" in r and "loss" in r]  # noqa: E731
    assert evals(far) == [2, 4]
    assert evals(near) == [2, 3, 4]
