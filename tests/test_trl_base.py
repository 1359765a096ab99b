"""The shared base of the TRL-driven trainers (training/trl_base.py) and its typed stream state: the
KL stop's decision on a real parameter set, the shared TRL arguments, each trainer's own part, and the
one set-up of the trainers that sample from prompts (``PromptRun``): their queries as GRPO and best-of-N
take them."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
import torch

from rlhf_demo.training.trl_callback import KLStop, eval_due, kl_stop
from rlhf_demo.training.trl_thread import StepClock, StreamState


def _rec(kl: float, reward: float) -> dict:
    return {"step": 0, "eval/kl": kl, "eval/reward_mean": reward, "eval/samples": [{"x": 1}], "loss": 0.5}


def test_kl_stop_keeps_the_last_policy_under_the_limit_and_puts_it_back():
    model = torch.nn.Linear(3, 2)
    state, control = StreamState(), SimpleNamespace(should_training_stop=False)
    kl_stop(1.0, 4, _rec(0.5, 0.2), model, control, state)  # under: remembered
    assert state.snapshot is not None and state.snapshot.step == 4 and not control.should_training_stop
    kept = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # the next step moves the weights
    kl_stop(1.0, 5, _rec(1.5, 0.4), model, control, state)  # passed: stop, restore step 4
    assert control.should_training_stop and state.snapshot is None
    assert all(torch.equal(p, k) for p, k in zip(model.parameters(), kept))
    assert state.restored == {"step": 4, "eval/kl": 0.5, "eval/reward_mean": 0.2}  # no eval/samples
    assert "restored the policy of step 4" in state.message


def test_kl_stop_passed_at_the_first_evaluation_stops_without_restoring():
    model, state, control = torch.nn.Linear(2, 2), StreamState(), SimpleNamespace(should_training_stop=False)
    kl_stop(1.0, 1, _rec(2.0, 0.0), model, control, state)
    assert control.should_training_stop and state.restored is None and "passed the stop at 1 nats" in state.message


def test_evaluation_every_step_only_near_the_kl_stop():
    cfg = SimpleNamespace(max_seconds=0.0, eval_at_seconds=(), eval_every=0)
    clock, state = StepClock(cfg), StreamState(last_kl=0.6)
    assert eval_due(cfg, 3, clock, state, KLStop(1.0, 0.5))  # 0.6 ≥ 0.5 × 1
    assert not eval_due(cfg, 3, clock, state, KLStop(1.0, 0.7))
    assert not eval_due(cfg, 3, clock, state, None)  # no KL stop: never
    assert not eval_due(cfg, 3, clock, StreamState(), KLStop(1.0, 0.5))  # not evaluated yet


def test_the_trl_trainers_share_one_base_and_keep_their_own_part():
    from rlhf_demo.bon.trainer import BoNTrainer
    from rlhf_demo.dpo.trainer import DPOTrainer
    from rlhf_demo.grpo.trainer import GRPOTrainer
    from rlhf_demo.reward_model.trainer import RewardTrainer
    from rlhf_demo.training.trl_base import PromptRun, TRLRun

    for cls in (GRPOTrainer, BoNTrainer):  # the prompt-sampling ones: one set-up (PromptRun's), then their own prepare()
        assert issubclass(cls, PromptRun) and "__init__" not in vars(cls) and "prepare" in vars(cls)
    for cls in (DPOTrainer, GRPOTrainer, RewardTrainer, BoNTrainer):
        assert issubclass(cls, TRLRun) and "train" not in vars(cls)
        if "_on_step" in vars(cls):  # its own per-step store (DPO's tokens), then the shared hook
            assert "super()._on_step(step)" in inspect.getsource(cls._on_step)
        assert "build_trl_trainer" in vars(cls) and cls.evaluate is not TRLRun.evaluate
    assert RewardTrainer.eval_if_stopped and DPOTrainer.eval_if_stopped  # every run that ends is evaluated
    dpo = SimpleNamespace(cfg=SimpleNamespace(beta=0.3, kl_stop=0.0, fine_eval_from=0.5))
    assert DPOTrainer.fixed(dpo) == {"beta": 0.3} and DPOTrainer.kl_watch(dpo) is None
    dpo.cfg.kl_stop = 6.0
    assert DPOTrainer.kl_watch(dpo) == KLStop(6.0, 0.5)


def test_training_queries_cut_each_prompt_once_seeded_and_drop_blank_ones(tiny_bundle):
    from rlhf_demo.training.trl_base import training_queries

    tok = tiny_bundle.tokenizer
    prompts = ["The film was a long and winding road of a story", "   ", "I watched this movie twice and then"]
    full = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    queries = training_queries(tok, prompts, (2, 5), seed=3)
    assert len(queries) == 2  # the blank prompt is left out
    for q, ids in zip(queries, (full[0], full[2])):
        assert 2 <= len(q) <= 5 and q == ids[: len(q)]  # a prefix of the prompt, of a drawn length
    assert training_queries(tok, prompts, (2, 5), seed=3) == queries  # the seed fixes the cuts
    assert {len(q) for s in range(8) for q in training_queries(tok, prompts[:1], (2, 5), seed=s)} != {len(queries[0])}  # drawn


@pytest.mark.parametrize("algo", ["dpo", "reward"])
def test_shared_trl_arguments(algo):
    from trl import DPOConfig, RewardConfig

    from rlhf_demo.training.trl_base import trl_args

    cfg = SimpleNamespace(lr=3e-4, max_grad_norm=0.7, seed=11)
    cls = DPOConfig if algo == "dpo" else RewardConfig
    args = trl_args(cls, cfg, torch.device("cpu"), "rlhf-test-", max_steps=2)
    assert (args.learning_rate, args.max_grad_norm, args.seed, args.data_seed, args.max_steps) == (3e-4, 0.7, 11, 11, 2)
    assert args.logging_steps == 1 and args.warmup_steps == 0 and args.use_cpu and not args.bf16
    assert getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type) == "constant" and args.report_to == []
