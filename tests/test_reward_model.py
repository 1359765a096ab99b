"""The reward model (trl.RewardTrainer on a tiny random Llama with a score head) and PPO on it: the logged
Bradley–Terry loss and accuracy against a hand computation, the trainable weights moving while the base
stays, the run folder loading with AutoModelForSequenceClassification, ``rm:`` errors, the gold reward
beside the proxy, the CLI from pairs to PPO; one real-model run (integration)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from rlhf_demo.cli.main import main
from rlhf_demo.ppo.config import preset as ppo_preset
from rlhf_demo.ppo.trainer import PPOTrainer
from rlhf_demo.reward_model.config import RewardConfig
from rlhf_demo.reward_model.trainer import RewardTrainer
from rlhf_demo.rewards.functions import RewardError, make_reward
from rlhf_demo.rewards.learned import load_reward_model, score_texts
from rlhf_demo.runs.folder import EXAMPLE_RUN, read_metrics, write_run

PAIRS = [
    {"prompt": "This movie was", "chosen": " wonderful and moving.", "rejected": " a dull waste of time."},
    {"prompt": "The acting", "chosen": " is superb", "rejected": " is terrible, honestly"},
    {"prompt": "I loved", "chosen": " every minute of it", "rejected": " nothing about it"},
    {"prompt": "The plot", "chosen": " kept me hooked", "rejected": " made no sense at all, sadly"},
    {"prompt": "Overall", "chosen": " a great film", "rejected": " a bad film"},  # 5th: held out (heldout_every 5)
]
PROMPTS = ["The movie was", "I watched this film", "The acting in this", "What a story", "The ending"]


def rm_cfg(model_dir, **kw) -> RewardConfig:
    base = dict(
        model=str(model_dir),
        heldout_every=5,
        batch_size=4,
        steps=1,
        eval_every=0,
        eval_at_start=False,
        max_seconds=0.0,
        lr=1e-2,
        seed=0,
        device="cpu",
    )
    base.update(kw)
    return RewardConfig.preset("quick-cpu", **base)


def hand_reward(model, tok, text: str) -> float:
    """r(text) by hand: the decoder's last hidden state at the text's last token (the EOS that TRL appends
    is the pad token, so the head reads the token before it), through the score head."""
    ids = tok(text + tok.eos_token)["input_ids"]
    assert ids[-1] == tok.pad_token_id and ids[-2] != tok.pad_token_id
    with torch.no_grad():
        h = model.model(input_ids=torch.tensor([ids])).last_hidden_state[0]  # [T, H]
        return float(model.score(h[-2]))


def test_logged_loss_and_accuracy_match_hand_computed_bradley_terry(tiny_model_dir):
    tr = RewardTrainer(rm_cfg(tiny_model_dir), PAIRS)
    assert len(tr.rows) == 4 and tr.heldout == [PAIRS[4]]
    model, tok = tr.policy.model, tr.policy.tokenizer
    with torch.no_grad():
        model.score.weight.mul_(200.0)  # scores far apart, so the loss is not the trivial log 2
    r_c = torch.tensor([hand_reward(model, tok, p["prompt"] + p["chosen"]) for p in tr.rows])  # [4]
    r_r = torch.tensor([hand_reward(model, tok, p["prompt"] + p["rejected"]) for p in tr.rows])  # [4]
    delta = r_c - r_r
    expected_loss = float(-F.logsigmoid(delta).mean())
    assert abs(expected_loss - math.log(2)) > 0.05
    assert 0 < float((delta > 0).float().mean()) < 1, "the hand-worked case should have pairs on both sides"

    recs = list(tr.train())
    step = [r for r in recs if r["step"] == 1][0]
    assert tr.status == "finished" and tr.step_no == 1
    assert step["loss"] == pytest.approx(expected_loss, abs=1e-4)
    assert step["accuracy"] == pytest.approx(float((delta > 0).float().mean()))
    assert step["margin"] == pytest.approx(float(delta.mean()), abs=1e-4)
    assert step["mean_reward"] == pytest.approx(float(torch.cat([r_c, r_r]).mean()), abs=1e-4)
    assert step["max_reward"] == pytest.approx(float(torch.cat([r_c, r_r]).max()), abs=1e-4)
    # the held-out pair, measured at the end with the trained model (one unpadded forward per text)
    with torch.no_grad():
        r = [
            float(tr.policy.model(input_ids=torch.tensor([tok(PAIRS[4]["prompt"] + PAIRS[4][k] + tok.eos_token)["input_ids"]])).logits)
            for k in ("chosen", "rejected")
        ]
    assert step["eval/n_pairs"] == 1 and step["eval/accuracy"] == float(r[0] > r[1])
    assert step["eval/margin"] == pytest.approx(r[0] - r[1], abs=1e-4)
    assert step["eval/loss"] == pytest.approx(-math.log(1 / (1 + math.exp(-(r[0] - r[1])))), abs=1e-4)


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    """A 3-step reward model written as a run folder, with its weights before training."""
    tr = RewardTrainer(rm_cfg(tiny_model_dir, steps=3, batch_size=2, eval_every=2, eval_at_start=True), PAIRS)
    before = {n: p.detach().clone() for n, p in tr.policy.model.named_parameters()}
    out = tmp_path_factory.mktemp("rm") / "run"
    recs = list(write_run(tr, out, preset="quick-cpu"))
    return tr, before, out, recs


def test_lora_and_score_head_train_the_base_does_not(trained):
    tr, before, out, recs = trained
    assert [r["step"] for r in recs] == [0, 1, 2, 3]
    assert all(k in recs[2] for k in ("loss", "accuracy", "margin", "grad_norm", "eval/accuracy"))
    trainable = set()
    for name, p in tr.policy.model.named_parameters():
        if p.requires_grad:
            trainable.add(name)
            continue
        plain = name.removeprefix("base_model.model.").replace(".base_layer", "").replace(".original_module", "")
        assert torch.equal(p, before[plain]), f"base weight {name} changed"
    assert any("score.modules_to_save" in n for n in trainable) and any("lora_B" in n for n in trainable)
    head = [p for n, p in tr.policy.model.named_parameters() if "score.modules_to_save" in n][0]
    assert not torch.equal(head, before["score.weight"]), "the score head did not train"
    assert any(not torch.equal(p, torch.zeros_like(p)) for n, p in tr.policy.model.named_parameters() if "lora_B" in n)
    assert tr.n_trainable == sum(p.numel() for n, p in tr.policy.model.named_parameters() if n in trainable)


def test_the_run_folder_loads_with_auto_model_for_sequence_classification(trained):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    tr, _, out, _ = trained
    policy = out / "policy"
    assert json.loads((policy / "adapter_config.json").read_text())["task_type"] == "SEQ_CLS"
    base_name = (policy / "base_model.txt").read_text().strip()
    base = AutoModelForSequenceClassification.from_pretrained(base_name, num_labels=1)
    model = PeftModel.from_pretrained(base, str(policy)).eval()
    tok = tr.policy.tokenizer
    texts = ["This movie was wonderful and moving.", "This movie was a dull waste of time."]
    loaded = score_texts(model, tok, texts)
    assert loaded[0] != pytest.approx(loaded[1], abs=1e-6)
    assert loaded == pytest.approx(score_texts(tr.policy.model, tok, texts), abs=1e-5)  # what was trained
    merged, _ = load_reward_model(out)  # our loader: the run folder, merged
    assert score_texts(merged, tok, texts) == pytest.approx(loaded, abs=1e-5)
    assert make_reward(f"rm:{policy}")(texts) == pytest.approx(loaded, abs=1e-5)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["n_heldout"] == 1 and "accuracy" in summary["final_eval"]
    assert json.loads((out / "config.json").read_text())["algo"] == "reward"


def _fake_dpo_run(root: Path) -> Path:
    run = root / "dpo-run"
    (run / "policy").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"algo": "dpo"}))
    (run / "metrics.jsonl").write_text("")
    (run / "policy" / "adapter_config.json").write_text(json.dumps({"task_type": "CAUSAL_LM"}))
    return run


def test_rm_errors_say_what_the_folder_is(tiny_model_dir, tmp_path):
    dpo = _fake_dpo_run(tmp_path)
    (tmp_path / "empty").mkdir()
    unsaved = tmp_path / "rm-unsaved"  # a reward-model run killed before its first checkpoint
    unsaved.mkdir()
    (unsaved / "config.json").write_text(json.dumps({"algo": "reward"}))
    (unsaved / "metrics.jsonl").write_text("")
    cases = [
        ("rm:/no/such/run", "does not exist"),
        ("rm:", "rm: needs a folder"),
        (f"rm:{tiny_model_dir}", "is a causal language model, not a reward model"),
        (f"rm:{dpo}", "is a DPO run (a policy), not a reward model"),
        (f"rm:{dpo / 'policy'}", "CAUSAL_LM adapter (a policy), not a reward model"),
        (f"rm:{EXAMPLE_RUN}", "is a PPO run"),
        (f"rm:{tmp_path / 'empty'}", "holds no model"),
        (f"rm:{unsaved}", "has saved no model yet"),
        (f"rm:{dpo / 'config.json'}", "is a file"),
    ]
    for spec, message in cases:
        with pytest.raises(RewardError, match=message.replace("(", r"\(").replace(")", r"\)")):
            make_reward(spec)


def test_ppo_on_the_reward_model_moves_the_policy_not_the_reward_model(trained, tiny_model_dir):
    _, _, out, _ = trained
    cfg = ppo_preset(
        "quick-cpu",
        model=str(tiny_model_dir),
        reward=f"rm:{out}",
        batch_size=4,
        num_mini_batches=2,
        ppo_epochs=1,
        steps=2,
        lr=1e-2,
        response_tokens=(4, 4),
        eval_every=2,
        eval_final=False,
        device="cpu",
    )
    tr = PPOTrainer(cfg, prompts=PROMPTS)
    rm = tr.reward_fn.model
    rm_before = {k: v.clone() for k, v in rm.state_dict().items()}
    lora = {n: p.detach().clone() for n, p in tr.policy.model.named_parameters() if "lora_" in n}
    recs = list(tr.train())
    assert tr.status == "finished" and [r["step"] for r in recs] == [1, 2]
    assert any(not torch.equal(p, lora[n]) for n, p in tr.policy.model.named_parameters() if "lora_" in n)
    assert all(torch.equal(v, rm_before[k]) for k, v in rm.state_dict().items()), "the reward model changed"
    assert not any(p.requires_grad for p in rm.parameters())
    vader = make_reward("vader-positive")
    for rec in recs:
        texts = [s["query"] + s["response"] for s in rec["samples"]]
        assert rec["reward_mean"] == pytest.approx(sum(score_texts(rm, tr.reward_fn.tokenizer, texts)) / 4, abs=1e-5)
        assert rec["gold_reward_mean"] == pytest.approx(sum(vader(texts)) / len(texts), abs=1e-6)
        assert [s["gold_reward"] for s in rec["samples"]] == pytest.approx(vader(texts), abs=1e-6)
    ev = recs[-1]
    eval_texts = [s["query"] + s["response"] for s in ev["eval/samples"]]
    assert ev["eval/gold_reward_mean"] == pytest.approx(sum(vader(eval_texts)) / len(eval_texts), abs=1e-9)


def test_gold_reward_off_or_equal_to_the_reward(tiny_model_dir):
    base = dict(
        model=str(tiny_model_dir),
        batch_size=4,
        num_mini_batches=2,
        ppo_epochs=1,
        steps=1,
        response_tokens=(4, 4),
        eval_final=False,
        device="cpu",
    )
    off = PPOTrainer(ppo_preset("quick-cpu", gold_reward="none", **base), prompts=PROMPTS)
    assert off.gold_fn is None and "gold_reward_mean" not in next(iter(off.train()))
    same = PPOTrainer(ppo_preset("quick-cpu", reward="length", gold_reward="length", **base), prompts=PROMPTS)
    rec = next(iter(same.train()))
    assert same.gold_fn is same.reward_fn and rec["gold_reward_mean"] == pytest.approx(rec["reward_mean"])
    with pytest.raises(RewardError, match="unknown reward"):
        PPOTrainer(ppo_preset("quick-cpu", gold_reward="sentiment", **base), prompts=PROMPTS)


def test_cli_reward_model_then_ppo_on_it(tiny_model_dir, tmp_path, capsys):
    rm_run, ppo_run = tmp_path / "D", tmp_path / "P"
    assert main(["train", "--algo", "reward", "--steps", "3", "--out", str(rm_run), "--model", str(tiny_model_dir)]) == 0
    text = capsys.readouterr().out
    assert "Step 3/3" in text and "Held-out pairs at the end: accuracy" in text
    df = read_metrics(rm_run)
    assert list(df["step"]) == [0, 1, 2, 3] and df["eval/accuracy"].notna().iloc[-1]
    assert (rm_run / "policy" / "adapter_model.safetensors").exists()
    assert (
        main(
            [
                "train",
                "--algo",
                "ppo",
                "--steps",
                "2",
                "--reward",
                f"rm:{rm_run}",
                "--out",
                str(ppo_run),
                "--model",
                str(tiny_model_dir),
                "--batch-size",
                "4",
                "--response-tokens",
                "4",
                "--ppo-epochs",
                "1",
                "--no-eval-final",
            ]
        )
        == 0
    )
    assert "(gold " in capsys.readouterr().out
    lines = [json.loads(l) for l in (ppo_run / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [1, 2]
    assert all(isinstance(l["gold_reward_mean"], float) and isinstance(l["reward_mean"], float) for l in lines)
    assert json.loads((ppo_run / "config.json").read_text())["gold_reward"] == "vader-positive"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--heldout-every", "1"], "heldout_every must be between"),
        (["--preferences", "/no/such/pairs.jsonl"], "does not exist"),
        (["--beta", "0.1"], "--beta: not a REWARD setting"),
        (["--max-length", "4"], "longer than max_length"),
        (["--preset", "fast"], "unknown REWARD preset"),
    ],
)
def test_bad_reward_model_input_is_one_clear_line(argv, message, tiny_model_dir, tmp_path, capsys):
    rc = main(["train", "--algo", "reward", "--out", str(tmp_path / "x"), "--model", str(tiny_model_dir), "--quiet"] + argv)
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # after the model's loading bar, when the error comes after loading
    assert rc == 2 and last.startswith("error: ") and message in last and "Traceback" not in err


def test_ppo_with_a_missing_reward_model_is_one_clear_line(tiny_model_dir, tmp_path, capsys):
    rc = main(["train", "--algo", "ppo", "--out", str(tmp_path / "x"), "--model", str(tiny_model_dir), "--reward", "rm:/no/such/run"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "does not exist" in err


@pytest.mark.integration
def test_real_model_reward_model_learns_the_shipped_pairs(tmp_path):
    cfg = RewardConfig.preset("quick-cpu", steps=8, eval_every=0, eval_at_start=True)
    tr = RewardTrainer(cfg)
    recs = list(write_run(tr, tmp_path / "rm"))
    start, end = recs[0], recs[-1]
    print(
        f"held-out pair accuracy {start['eval/accuracy']:.3f} → {end['eval/accuracy']:.3f} on {end['eval/n_pairs']} "
        f"pairs (loss {start['eval/loss']:.3f} → {end['eval/loss']:.3f}) in {tr.time_s:.0f} s of training"
    )
    assert tr.status == "finished" and end["step"] == 8
    # measured (constant lr: the same trajectory at any length): step 4 0.604 / 0.689, 6 0.646 / 0.682, 8 0.667 / 0.676
    assert end["eval/accuracy"] > 0.5 and end["eval/loss"] < start["eval/loss"]  # 8 steps: 0.691 → 0.676 measured
    assert make_reward(f"rm:{tmp_path / 'rm'}")(["A wonderful, moving film.", "A dull, awful film."]) != [0.0, 0.0]
