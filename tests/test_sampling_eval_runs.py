import json

import pytest
import torch

from rlhf_demo.decoding.sampling import response_logits, sample_responses, token_logprobs
from rlhf_demo.evaluate import EvalConfig, distinct_n, evaluate_policy
from rlhf_demo.rewards.functions import make_reward
from rlhf_demo.runs.folder import RunWriter, list_runs, policy_choices, read_metrics


def test_left_padded_scoring_matches_generation(tiny_bundle):
    """Log-probs re-computed by a forward pass equal those generate() sampled from (raw logits),
    for queries of different lengths (left padding + position ids)."""
    model, tok = tiny_bundle.model, tiny_bundle.tokenizer
    queries = [[504, 7704, 436], [1, 2, 3, 4, 5, 6, 7], [42]]
    batch = sample_responses(model, tok, queries, 5, seed=0, keep_outputs=True)
    assert batch.response_ids.shape == (3, 5) and batch.response_mask.all()
    assert not set(batch.response_ids.flatten().tolist()) & set(tok.all_special_ids)
    with torch.no_grad():
        fwd = response_logits(model, batch)
    # batch.logits: the raw logits generate() computed at each step, before any processor
    torch.testing.assert_close(
        token_logprobs(fwd, batch.response_ids), token_logprobs(batch.logits, batch.response_ids), atol=1e-4, rtol=1e-4
    )


def test_inverse_cdf_sampler_draws_from_the_softmax():
    """A hand-made distribution, 40 000 rows drawn at once: each token's frequency is within 5σ of
    its probability, and a token masked to −inf (probability 0) is never drawn."""
    from rlhf_demo.decoding.sampling import InverseCDFSampler

    p = torch.tensor([0.1, 0.0, 0.45, 0.3, 0.15])
    scores = torch.log(p).expand(40_000, -1).clone()  # log 0 = −inf
    out = InverseCDFSampler(torch.Generator().manual_seed(0))(None, scores)
    assert torch.equal(torch.isfinite(out).sum(-1), torch.ones(40_000, dtype=torch.long))
    freq = torch.bincount(out.argmax(-1), minlength=5).double() / 40_000
    sigma = (p.double() * (1 - p.double()) / 40_000).sqrt()
    assert freq[1] == 0
    assert ((freq - p.double()).abs() <= 5 * sigma + 1e-12).all(), freq


def test_sampling_with_top_k_1_is_greedy_and_warpers_apply(tiny_bundle):
    """The sampler runs after transformers' warpers: with top-k = 1 only the argmax survives, so
    sampled responses equal greedy ones; with top-k = 3 every drawn token is among the 3 most likely."""
    model, tok = tiny_bundle.model, tiny_bundle.tokenizer
    queries = [[504, 7704, 436], [1, 2, 3, 4, 5, 6, 7]]
    greedy = sample_responses(model, tok, queries, 6, temperature=0)
    k1 = sample_responses(model, tok, queries, 6, top_k=1, seed=3)
    assert torch.equal(greedy.input_ids, k1.input_ids)
    k3 = sample_responses(model, tok, queries, 6, top_k=3, temperature=2.0, seed=3, keep_outputs=True)
    special = torch.tensor(tok.all_special_ids)
    raw = k3.logits.clone()
    raw[..., special] = float("-inf")  # the suppressed tokens come before the warpers
    top3 = raw.topk(3, dim=-1).indices  # [B, R, 3]
    assert (top3 == k3.response_ids.unsqueeze(-1)).any(-1).all()


def test_distinct_n_hand_case():
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n(["love love love love"], 2) == pytest.approx(1 / 3)
    assert distinct_n(["one"], 2) == 0.0


def test_eval_of_fresh_lora_has_zero_kl_and_fixed_samples(tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    from rlhf_demo.models.loading import load_model

    b = load_model(str(tiny_model_dir), device="cpu")
    pol = get_peft_model(b.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    cfg = EvalConfig(n_prompts=4, samples_per_prompt=2, response_tokens=6)
    r1 = evaluate_policy(pol, b.tokenizer, make_reward("length"), cfg)
    assert r1["n"] == 8 and r1["kl"] == 0.0 and r1["kl_k1"] == 0.0
    from rlhf_demo.evaluate import on_topic_share

    assert r1["on_topic"] == on_topic_share([row["response"] for row in r1["samples"]])
    # a perturbed adapter moves the policy: exact KL > 0, and evaluation is deterministic
    with torch.no_grad():
        for n, p in pol.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    r2 = evaluate_policy(pol, b.tokenizer, make_reward("length"), cfg)
    r3 = evaluate_policy(pol, b.tokenizer, make_reward("length"), cfg)
    assert r2["kl"] > 0 and r2["kl"] == pytest.approx(r3["kl"]) and r2["samples"] == r3["samples"]
    asked = []  # cancel() is asked before each batch of prompts: a second Stop abandons the rest
    halves = EvalConfig(n_prompts=4, samples_per_prompt=2, response_tokens=6, batch_size=4)
    assert evaluate_policy(pol, b.tokenizer, make_reward("length"), halves, cancel=lambda: asked.append(1) or len(asked) > 1) is None
    assert len(asked) == 2  # the first batch ran, the second was not begun
    r4 = evaluate_policy(pol, b.tokenizer, make_reward("length"), halves, cancel=lambda: False)
    assert r4["n"] == 8 and r4["kl"] > 0
    with pytest.raises(ValueError, match="n_prompts must be between 1"):
        EvalConfig(n_prompts=0).validate()


def test_run_writer_round_trip(tmp_path):
    out = tmp_path / "r1"
    with RunWriter(out, {"algo": "ppo", "beta": float("nan")}) as w:
        w.log_metrics({"step": 1, "reward_mean": 0.5, "kl": torch.tensor(0.25)})
        w.log_samples(1, [{"query": "q", "response": "r", "reward": 1.0}])
        w.finish("stopped", "stopped by user")
    (out / "metrics.jsonl").open("a").write('{"step": 2, "rew')  # a torn last line (crash mid-write)
    df = read_metrics(out)
    assert df["step"].tolist() == [1] and df["kl"].tolist() == [0.25]
    assert json.loads((out / "config.json").read_text())["beta"] is None
    assert json.loads((out / "summary.json").read_text())["status"] == "stopped"
    assert out in list_runs(tmp_path)
    with pytest.raises(FileExistsError):
        RunWriter(out, {"algo": "ppo"})


def test_policy_choices_lists_saved_policies(tmp_path):
    run = tmp_path / "r"
    RunWriter(run, {"algo": "dpo"}).close()
    assert [c for c in policy_choices(tmp_path) if "run: r" in c[0]] == []
    (run / "policy").mkdir()
    (run / "policy" / "adapter_config.json").write_text("{}")
    assert any(v == "run:r" for _, v in policy_choices(tmp_path))  # a short name, never a server path
    from rlhf_demo.classroom import allowlist

    assert allowlist.check_model("run:r", own_runs=[str(run)]) == str(run / "policy")


def test_on_topic_hand_cases():
    from rlhf_demo.evaluate import on_topic, on_topic_share
    from rlhf_demo.runs.records import KEYS, eval_record

    assert on_topic(" The actors were wonderful") and on_topic("we WATCHED it twice") and on_topic("a sci-fi sequel")
    assert not on_topic(" can greatly impact customer satisfaction and overall business success.")
    assert not on_topic("") and not on_topic("the factory")  # a word must *begin* with a keyword
    assert on_topic_share(["a film", "a loan", "the plot", "tax"]) == 0.5 and on_topic_share([]) == 0.0
    assert on_topic_share(["my bank"], keywords=("bank",)) == 1.0
    ev = {
        "reward_mean": 0.1,
        "reward_std": 0.2,
        "reward_sem": 0.03,
        "kl": 1.0,
        "kl_k1": 0.9,
        "distinct2": 0.9,
        "on_topic": 0.25,
        "n": 4,
        "samples": [],
    }
    assert eval_record(ev)["eval/on_topic"] == 0.25 and "eval/on_topic" in KEYS


def test_status_line_shows_on_topic_beside_distinct2():
    from rlhf_demo.training.status import heldout_line

    rec = {"eval/reward_mean": 0.3, "eval/reward_sem": 0.04, "eval/kl": 2.0, "eval/distinct2": 0.91}
    assert heldout_line(rec).endswith("distinct-2 0.91")
    assert heldout_line(rec | {"eval/on_topic": 0.25}).endswith("distinct-2 0.91, on topic 25%")


@pytest.mark.parametrize("name", ["example-ppo", "example-dpo", "example-bon"])
def test_shipped_examples_held_out_figures_are_those_of_their_stored_samples(name):
    """Each held-out record of a shipped example run (the README quotes them) against the 64 samples
    stored for that step: the mean reward, distinct-2 and the on-topic share computed again from the texts."""
    from pathlib import Path

    from rlhf_demo.evaluate import on_topic_share

    run = Path(__file__).resolve().parents[1] / "rlhf_demo" / "assets" / name
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval/reward_mean" in r]
    assert len(evals) >= 2
    for rec in evals:
        texts = [r for r in rows if r["kind"] == "eval" and r["step"] == rec["step"]]
        assert len(texts) == rec["eval/n"] == 64, rec["step"]
        responses = [r["response"] for r in texts]
        assert rec["eval/reward_mean"] == pytest.approx(sum(r["reward"] for r in texts) / len(texts), abs=1e-4)
        assert rec["eval/distinct2"] == pytest.approx(distinct_n(responses), abs=1e-9)
        assert rec["eval/on_topic"] == pytest.approx(on_topic_share(responses), abs=1e-9), rec["step"]
