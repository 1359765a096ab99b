import json

import pytest
import torch
import torch.nn.functional as F

from rlhf_demo.evaluate import EvalConfig, distinct_n, evaluate_policy
from rlhf_demo.rewards import make_reward
from rlhf_demo.runs import RunWriter, list_runs, policy_choices, read_metrics
from rlhf_demo.sampling import response_logits, sample_responses, token_logprobs


def test_left_padded_scoring_matches_generation(tiny_bundle):
    """Log-probs re-computed by a forward pass equal those generate() sampled from (raw logits),
    for queries of different lengths (left padding + position ids)."""
    model, tok = tiny_bundle.model, tiny_bundle.tokenizer
    queries = [[504, 7704, 436], [1, 2, 3, 4, 5, 6, 7], [42]]
    batch = sample_responses(model, tok, queries, 5, seed=0)
    assert batch.response_ids.shape == (3, 5) and batch.response_mask.all()
    assert not set(batch.response_ids.flatten().tolist()) & set(tok.all_special_ids)
    # generate again with the same seed, asking for the raw logits of every step
    torch.manual_seed(0)
    from rlhf_demo.sampling import left_pad

    ids, mask = left_pad(queries, tok.pad_token_id, "cpu")
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=5, min_new_tokens=5, do_sample=True,
                         top_k=None, suppress_tokens=list(tok.all_special_ids), pad_token_id=tok.pad_token_id,
                         output_logits=True, return_dict_in_generate=True)
    assert torch.equal(out.sequences, batch.input_ids)
    gen_logits = torch.stack(out.logits, 1)  # [B, R, V]
    with torch.no_grad():
        fwd = response_logits(model, batch)
    torch.testing.assert_close(token_logprobs(fwd, batch.response_ids), token_logprobs(gen_logits, batch.response_ids),
                               atol=1e-4, rtol=1e-4)


def test_distinct_n_hand_case():
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n(["love love love love"], 2) == pytest.approx(1 / 3)
    assert distinct_n(["one"], 2) == 0.0


def test_eval_of_fresh_lora_has_zero_kl_and_fixed_samples(tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    from rlhf_demo.models import load_model

    b = load_model(str(tiny_model_dir), device="cpu")
    pol = get_peft_model(b.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    cfg = EvalConfig(n_prompts=4, samples_per_prompt=2, response_tokens=6)
    r1 = evaluate_policy(pol, b.tokenizer, make_reward("length"), cfg)
    assert r1["n"] == 8 and r1["kl"] == 0.0 and r1["kl_k1"] == 0.0
    # a perturbed adapter moves the policy: exact KL > 0, and evaluation is deterministic
    with torch.no_grad():
        for n, p in pol.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    r2 = evaluate_policy(pol, b.tokenizer, make_reward("length"), cfg)
    r3 = evaluate_policy(pol, b.tokenizer, make_reward("length"), cfg)
    assert r2["kl"] > 0 and r2["kl"] == pytest.approx(r3["kl"]) and r2["samples"] == r3["samples"]
    with pytest.raises(ValueError, match="positive integer"):
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
    assert any(v == str(run / "policy") for _, v in policy_choices(tmp_path))
