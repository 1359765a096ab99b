"""Best-of-N distillation (``rlhf_demo/bon``): the winners kept are the hand argmax of the reward among each
prompt's N samples (and a seed gives the same samples); a one-step run through the CLI writes its records
(the sampling round's figures, TRL's SFT loss, the held-out evaluation) and a policy that loads, with the
LoRA adapter moved, with a progress line per sampled batch before the first step; the registry puts it
in ``train --algo``'s choices."""

from __future__ import annotations

import json

import pytest
import torch

from rlhf_demo.bon.algorithm import sampling_line
from rlhf_demo.bon.winners import keep_indices, sample_round
from rlhf_demo.cli.main import build_parser, main
from rlhf_demo.decoding.best_of_n import kl_bound
from rlhf_demo.decoding.sampling import make_generator
from rlhf_demo.runs.folder import read_metrics

PROMPTS = ["The film was", "I watched this movie and", "Acting aside, the plot"]


def chars(texts: list[str]) -> list[float]:
    """A reward that differs between almost any two answers (characters / 10), so each prompt has one winner."""
    return [len(t) / 10.0 for t in texts]


def test_keep_indices_by_hand():
    scores = [0.1, 0.7, 0.7, -0.2]  # mean 0.325; a tie for the best: the first is picked
    assert keep_indices(scores, "best") == [1]
    assert keep_indices(scores, "above-mean") == [1, 2]
    assert keep_indices([0.5, 0.5, 0.5], "above-mean") == []  # no signal, nothing kept
    with pytest.raises(ValueError, match="keep must be"):
        keep_indices(scores, "worst")


def test_kept_answer_is_the_hand_argmax_of_n_samples(tiny_bundle):
    tok, n = tiny_bundle.tokenizer, 5
    queries = [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    calls = []
    rnd = sample_round(tiny_bundle.model, tok, queries, n, 4, chars, make_generator(7), chunk=4, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(4, 15), (8, 15), (12, 15), (15, 15)]  # one call per sampled batch; the batches cut across prompts
    assert len(rnd.rows) == len(PROMPTS) * n and len(rnd.examples) == len(PROMPTS)
    for p, query in enumerate(queries):
        group = rnd.rows[p * n : (p + 1) * n]
        assert {r["prompt"] for r in group} == {p}
        hand = chars([r["query"] + r["response"] for r in group])
        assert [r["reward"] for r in group] == pytest.approx(hand)
        best = max(range(n), key=lambda i: (hand[i], -i))
        assert [r["kept"] for r in group] == [i == best for i in range(n)]
        ex = rnd.examples[p]  # the winner's token ids as sampled, the query masked out of the loss
        assert ex["input_ids"][: len(query)] == query and ex["completion_mask"] == [0] * len(query) + [1] * 4
        assert tok.decode(ex["input_ids"][len(query) :]) == group[best]["response"]
    stats = rnd.stats()
    assert stats["kept"] == len(PROMPTS) and stats["reward_kept"] >= stats["reward_all"]
    again = sample_round(tiny_bundle.model, tok, queries, n, 4, chars, make_generator(7), chunk=4)
    assert [r["response"] for r in again.rows] == [r["response"] for r in rnd.rows]  # the seed fixes the samples


def test_sampling_line_counts_prompts_and_its_eta():
    assert sampling_line(16, 24, 96, 12.0) == "sampling the best of 16: 24/96 prompts · 12 s · ETA ≈ 36 s"  # 0.5 s a prompt × 72
    assert sampling_line(16, 0, 96, 0.0) == "sampling the best of 16: 0/96 prompts · 0 s"  # no ETA before the first batch


def test_registry_offers_bon_to_the_cli():
    train = next(a for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions if a.dest == "algo")
    assert "bon" in train.choices


def test_one_step_cli_run_writes_records_and_a_policy(tiny_model_dir, tmp_path, capsys):
    from safetensors.torch import load_file

    from rlhf_demo.models.loading import load_model

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    out = tmp_path / "bon-run"
    argv = ["train", "--algo", "bon", "--out", str(out), "--model", str(tiny_model_dir), "--prompts", str(prompts)]
    argv += ["--reward", "length", "--steps", "1", "--num-samples", "4", "--response-tokens", "4", "--batch-size", "2", "--device", "cpu"]
    assert main(argv) == 0
    err = capsys.readouterr().err  # the trainer's progress lines (the UI's queue shows the same ones)
    assert "sampling the best of 4: 0/3 prompts" in err and "sampling the best of 4: 3/3 prompts" in err

    recs = read_metrics(out).to_dict("records")
    assert [r["step"] for r in recs] == [0, 1]
    assert "eval/reward_mean" in recs[0] and "eval/kl" in recs[-1]  # before and after, the shared held-out evaluation
    last = recs[-1]
    assert last["bon/kept"] == 3 and last["bon/kl_bound"] == pytest.approx(kl_bound(4), abs=1e-4)
    assert last["bon/reward_kept"] >= last["bon/reward_all"] and last["loss"] > 0
    batch = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert sum(1 for r in batch if r.get("kind") == "batch") == 3  # the kept answers, one per prompt
    assert json.loads((out / "config.json").read_text())["algo"] == "bon"

    assert load_model(str(out / "policy"), device="cpu", dtype=torch.float32).model is not None  # the policy loads
    lora_b = [t for k, t in load_file(out / "policy" / "adapter_model.safetensors").items() if "lora_B" in k]
    assert lora_b and any(t.abs().sum() > 0 for t in lora_b)  # LoRA's B starts at 0: the step moved it
