"""PPO on a learned reward model, checked from its run folder: the policy moves, the reward model's weights
(in memory and on disk) do not; every logged ``reward_mean`` is the reward model's score and every
``gold_reward_mean`` VADER's, both recomputed independently from the logged samples; the Reward-model
panel's core (disagreement ranking, scoring) against hand computations; ``rm:`` folders that are not
reward models refused in one line before anything trains (CLI and PPO panel). One real-model run."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from rlhf_demo.cli.main import main
from rlhf_demo.ppo.config import preset as ppo_preset
from rlhf_demo.ppo.trainer import PPOTrainer
from rlhf_demo.reward_model.config import RewardConfig
from rlhf_demo.reward_model.inspect import Scorers, disagreements, heldout_texts, latest_heldout, percentile, reward_model_runs
from rlhf_demo.reward_model.trainer import RewardTrainer
from rlhf_demo.rewards.functions import RewardError, make_reward
from rlhf_demo.runs.folder import read_metrics, write_run

PAIRS = [
    {"prompt": "This movie was", "chosen": " wonderful and moving.", "rejected": " a dull waste of time."},
    {"prompt": "The acting", "chosen": " is superb", "rejected": " is terrible, honestly"},
    {"prompt": "I loved", "chosen": " every minute of it", "rejected": " nothing about it"},
    {"prompt": "The plot", "chosen": " kept me hooked", "rejected": " made no sense at all, sadly"},
    {"prompt": "Overall", "chosen": " a great film", "rejected": " a bad film"},
    {"prompt": "The music", "chosen": " is beautiful", "rejected": " is awful noise"},
]
EXAMPLE_REWARD = Path(__file__).resolve().parents[1] / "rlhf_demo" / "assets" / "example-reward"
PROMPTS = ["The movie was", "I watched this film", "The acting in this", "What a story", "The ending"]


def folder_hash(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode() + f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def rm_run(tiny_model_dir, tmp_path_factory) -> Path:
    """A 3-step reward model on the tiny model, written as a run folder (pairs 3 and 6 held out)."""
    cfg = RewardConfig.preset(
        "quick-cpu",
        model=str(tiny_model_dir),
        heldout_every=3,
        batch_size=2,
        steps=3,
        eval_every=0,
        eval_at_start=False,
        max_seconds=0.0,
        lr=1e-2,
        seed=0,
        device="cpu",
    )
    out = tmp_path_factory.mktemp("overopt") / "rm"
    list(write_run(RewardTrainer(cfg, PAIRS), out))
    return out


def independent_reward_model(rm_run: Path):
    """The reward model loaded the plain way (transformers + peft), not through rewards.learned."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = (rm_run / "policy" / "base_model.txt").read_text().strip()
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    model.config.pad_token_id = tok.pad_token_id
    return PeftModel.from_pretrained(model, str(rm_run / "policy")).eval(), tok


def one_score(model, tok, text: str) -> float:
    """r(text): one unpadded forward of text + EOS (EOS is the pad token, so the head reads the token before it)."""
    with torch.no_grad():
        return float(model(input_ids=torch.tensor([tok(text + tok.eos_token)["input_ids"]])).logits[0, 0])


def test_ppo_on_rm_run_folder_policy_moves_reward_model_does_not_and_logs_proxy_and_gold(rm_run, tiny_model_dir, tmp_path):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    on_disk = folder_hash(rm_run / "policy")
    cfg = ppo_preset(
        "no-kl",
        model=str(tiny_model_dir),
        reward=f"rm:{rm_run}",
        batch_size=4,
        num_mini_batches=2,
        ppo_epochs=1,
        steps=2,
        lr=1e-2,
        response_tokens=(5, 5),
        eval_final=False,
        device="cpu",
    )
    tr = PPOTrainer(cfg, prompts=PROMPTS)
    rm_before = {k: v.clone() for k, v in tr.reward_fn.model.state_dict().items()}
    lora = {n: p.detach().clone() for n, p in tr.policy.model.named_parameters() if "lora_" in n}
    out = tmp_path / "ppo"
    recs = list(write_run(tr, out))
    assert tr.status == "finished" and [r["step"] for r in recs] == [1, 2]
    assert any(not torch.equal(p, lora[n]) for n, p in tr.policy.model.named_parameters() if "lora_" in n), "the policy did not move"
    assert all(torch.equal(v, rm_before[k]) for k, v in tr.reward_fn.model.state_dict().items()), "the reward model moved"
    assert folder_hash(rm_run / "policy") == on_disk, "the reward model's files changed"

    # every logged mean, recomputed from samples.jsonl with an independent reward model and VADER itself
    metrics = read_metrics(out).set_index("step")
    samples = pd.DataFrame([json.loads(l) for l in (out / "samples.jsonl").read_text().splitlines()])
    samples = samples[samples["kind"] == "batch"]
    model, tok = independent_reward_model(rm_run)
    vader = SentimentIntensityAnalyzer()
    assert sorted(samples["step"].unique()) == [1, 2]
    for step, rows in samples.groupby("step"):
        texts = list(rows["query"] + rows["response"])
        assert len(texts) == 4
        gold = [vader.polarity_scores(t)["compound"] for t in texts]
        proxy = [one_score(model, tok, t) for t in texts]
        assert metrics.loc[step, "gold_reward_mean"] == pytest.approx(sum(gold) / 4, abs=1e-6)
        assert list(rows["gold_reward"]) == pytest.approx(gold, abs=1e-6)
        assert metrics.loc[step, "reward_mean"] == pytest.approx(sum(proxy) / 4, abs=1e-4)
        assert list(rows["reward"]) == pytest.approx(proxy, abs=1e-4)
    assert json.loads((out / "config.json").read_text())["gold_reward"] == "vader-positive"


def test_disagreements_rank_by_the_standardised_gap_computed_by_hand():
    texts = pd.DataFrame({"text": ["a", "b", "c", "d"], "reward model": [2.0, 0.0, -1.0, 3.0]})
    gold = [0.5, 0.9, -0.8, -0.2]
    table = disagreements(texts, gold, top=3)
    mu_r, sd_r = 1.0, math.sqrt(sum((x - 1.0) ** 2 for x in [2, 0, -1, 3]) / 4)
    mu_g = sum(gold) / 4
    sd_g = math.sqrt(sum((g - mu_g) ** 2 for g in gold) / 4)
    gap = {t: (r - mu_r) / sd_r - (g - mu_g) / sd_g for t, r, g in zip("abcd", [2.0, 0.0, -1.0, 3.0], gold)}
    expected = sorted(gap, key=lambda t: -abs(gap[t]))[:3]
    assert list(table["text"]) == expected
    assert list(table["z gap (rm − gold)"]) == pytest.approx([round(gap[t], 3) for t in expected], abs=1e-3)
    assert table["gold (VADER)"].tolist() == [gold["abcd".index(t)] for t in expected]
    assert percentile(1.5, texts["reward model"]) == 0.5 and len(disagreements(texts.iloc[:0], [])) == 0


def test_held_out_texts_and_scores_come_from_the_last_evaluation(rm_run):
    pairs = latest_heldout(rm_run)
    assert [p["prompt"] for p in pairs] == [PAIRS[2]["prompt"], PAIRS[5]["prompt"]]
    texts = heldout_texts(pairs)
    assert len(texts) == 4 and texts["text"][0] == PAIRS[2]["prompt"] + PAIRS[2]["chosen"]
    model, tok = independent_reward_model(rm_run)
    assert list(texts["reward model"]) == pytest.approx([one_score(model, tok, t) for t in texts["text"]], abs=1e-4)
    scorers = Scorers(size=1)
    rm_scores, gold = scorers.score(rm_run, ["A wonderful film.", "An awful film."])
    assert rm_scores == pytest.approx([one_score(model, tok, t) for t in ["A wonderful film.", "An awful film."]], abs=1e-4)
    assert gold == make_reward("vader-positive")(["A wonderful film.", "An awful film."])
    assert scorers.reward(rm_run) is scorers.reward(str(rm_run))  # loaded once
    assert reward_model_runs([rm_run, rm_run.parent]) == [rm_run]


# --------------------------------------------------------------------------- bad rm: folders
def _dpo_run(root: Path) -> Path:
    run = root / "dpo-run"
    (run / "policy").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"algo": "dpo"}))
    (run / "metrics.jsonl").write_text("")
    (run / "policy" / "adapter_config.json").write_text(json.dumps({"task_type": "CAUSAL_LM"}))
    return run


def _two_label_classifier(tiny_model_dir: Path, root: Path) -> Path:
    from transformers import AutoModelForSequenceClassification

    out = root / "two-labels"
    AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=2).save_pretrained(out)
    return out


@pytest.mark.parametrize(
    "what, message",
    [
        ("dpo", "is a DPO run (a policy), not a reward model"),
        ("causal", "is a causal language model, not a reward model"),
        ("nothing", "does not exist"),
        ("empty", "holds no model"),
        ("two-labels", "classifier with 2 labels"),
    ],
)
@pytest.mark.parametrize("flag", ["--reward", "--gold-reward"])
def test_cli_refuses_a_folder_that_is_no_reward_model_before_loading_the_policy(what, message, flag, tiny_model_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    folder = {
        "dpo": lambda: _dpo_run(tmp_path),
        "causal": lambda: tiny_model_dir,
        "nothing": lambda: tmp_path / "none",
        "empty": lambda: tmp_path / "empty",
        "two-labels": lambda: _two_label_classifier(tiny_model_dir, tmp_path),
    }[what]()
    out = tmp_path / "P"
    rc = main(["train", "--algo", "ppo", "--out", str(out), "--model", "/no/such/policy/model", flag, f"rm:{folder}"])
    err = capsys.readouterr().err
    lines = [l for l in err.strip().splitlines() if l.startswith("error: ")]
    assert rc == 2 and len(lines) == 1 and message in lines[0] and "Traceback" not in err
    assert "/no/such/policy/model" not in err  # refused before the policy model was even looked for
    assert not out.exists()  # nothing written


def test_a_one_label_classifier_folder_is_a_reward_model(tiny_model_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tmp_path / "rm-full"
    AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    scores = make_reward(f"rm:{folder}")(["good", "bad"])
    assert len(scores) == 2 and all(math.isfinite(s) for s in scores)


def test_ppo_panel_refuses_a_bad_rm_folder_at_start(tiny_model_dir, tmp_path):
    """The PPO panel checks rm: folders when Start is pressed (``training_ppo.check_reward_folders``), so
    the message comes before the run is queued, not from the queue's worker."""
    from rlhf_demo.ui.training_ppo import check_reward_folders

    for spec, message in ((f"rm:{_dpo_run(tmp_path)}", "is a DPO run"), (f"rm:{tiny_model_dir}", "causal language model")):
        cfg = ppo_preset("quick-cpu", reward=spec)
        with pytest.raises(RewardError, match=message):
            check_reward_folders(cfg)
        with pytest.raises(RewardError, match=message):
            check_reward_folders(ppo_preset("quick-cpu", gold_reward=spec))
    check_reward_folders(ppo_preset("quick-cpu"))  # no rm: nothing to check


# --------------------------------------------------------------------------- the real default model
@pytest.mark.integration
def test_real_model_ppo_on_a_real_reward_model_moves_the_policy_not_the_reward_model(tmp_path):
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    rm = tmp_path / "rm"  # the shipped reward model on the real model (trained as test_reward_model.py trains one)
    shutil.copytree(EXAMPLE_REWARD, rm)
    on_disk = folder_hash(rm / "policy")
    cfg = ppo_preset("no-kl", reward=f"rm:{rm}", steps=2, batch_size=4, num_mini_batches=2, eval_final=False)
    tr = PPOTrainer(cfg)
    rm_before = {k: v.clone() for k, v in tr.reward_fn.model.state_dict().items()}
    lora = {n: p.detach().clone() for n, p in tr.policy.model.named_parameters() if "lora_" in n}
    recs = list(write_run(tr, tmp_path / "ppo"))
    assert tr.status == "finished" and len(recs) == 2
    assert any(not torch.equal(p, lora[n]) for n, p in tr.policy.model.named_parameters() if "lora_" in n)
    assert all(torch.equal(v, rm_before[k]) for k, v in tr.reward_fn.model.state_dict().items())
    assert folder_hash(rm / "policy") == on_disk
    vader = SentimentIntensityAnalyzer()
    for rec in recs:
        texts = [s["query"] + s["response"] for s in rec["samples"]]
        assert rec["gold_reward_mean"] == pytest.approx(sum(vader.polarity_scores(t)["compound"] for t in texts) / len(texts), abs=1e-6)
    print(
        f"real model: proxy {recs[0]['reward_mean']:+.3f} → {recs[-1]['reward_mean']:+.3f}, gold "
        f"{recs[0]['gold_reward_mean']:+.3f} → {recs[-1]['gold_reward_mean']:+.3f}"
    )
