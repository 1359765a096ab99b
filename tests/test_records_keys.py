"""Every key a trainer writes is listed in ``runs/records.py`` with its meaning: each trainer runs one
tiny step on the tiny model (evaluating before and after, with every optional part of its record on)
and the keys of its records are checked against ``records.KEYS``."""

from __future__ import annotations

import pytest

from rlhf_demo.runs import records

PROMPTS = ["The movie was", "I watched this film", "The acting in this", "What a story", "The ending"]
PAIRS = [
    {"prompt": "This movie was", "chosen": " wonderful and moving.", "rejected": " a dull waste of time."},
    {"prompt": "The acting", "chosen": " is superb", "rejected": " is terrible, honestly"},
    {"prompt": "I loved", "chosen": " every minute of it", "rejected": " nothing about it"},
    {"prompt": "The plot", "chosen": " kept me hooked", "rejected": " made no sense at all, sadly"},
    {"prompt": "Overall", "chosen": " a great film", "rejected": " a bad film"},  # held out (heldout_every 5)
]
RARE = {"diverged", "aux_loss"}
"""Listed keys a one-step run cannot show: a diverged PPO update, a mixture-of-experts router's loss."""


def chars(texts):
    return [len(t) / 20 for t in texts]


def _ppo(model_dir):
    from rlhf_demo.ppo.config import preset
    from rlhf_demo.ppo.trainer import PPOTrainer

    cfg = preset(
        "quick-cpu",
        model=str(model_dir),
        reward="length",  # the gold reward (VADER) is then measured beside it
        gold_reward="vader-positive",
        kl_budget=5.0,  # check_budget's keys before the final evaluation
        kl_target=1.0,  # the adaptive controller
        batch_size=4,
        num_mini_batches=2,
        ppo_epochs=1,
        steps=1,
        response_tokens=(4, 4),
        eval_at_start=True,
        eval_final=True,
        device="cpu",
    )
    return PPOTrainer(cfg, prompts=PROMPTS)


def _dpo(model_dir):
    from rlhf_demo.dpo.config import DPOConfig
    from rlhf_demo.dpo.trainer import DPOTrainer

    cfg = DPOConfig.preset(
        "quick-cpu", model=str(model_dir), max_length=64, batch_size=2, steps=1, eval_at_start=True, kl_stop=0.0, max_seconds=0.0
    )
    return DPOTrainer(cfg, PAIRS[:2])


def _grpo(model_dir):
    from rlhf_demo.grpo.config import GRPOConfig
    from rlhf_demo.grpo.trainer import GRPOTrainer

    cfg = GRPOConfig.preset(
        "quick-cpu",
        model=str(model_dir),
        steps=1,
        batch_size=4,
        num_generations=2,
        response_tokens=4,
        num_iterations=1,
        eval_at_start=True,
        kl_stop=0.0,
        max_seconds=0.0,
        device="cpu",
    )
    return GRPOTrainer(cfg, prompts=PROMPTS[:3], reward_fn=chars)


def _reward(model_dir):
    from rlhf_demo.reward_model.config import RewardConfig
    from rlhf_demo.reward_model.trainer import RewardTrainer

    cfg = RewardConfig.preset(
        "quick-cpu", model=str(model_dir), heldout_every=5, batch_size=4, steps=1, eval_at_start=True, max_seconds=0.0, device="cpu"
    )
    return RewardTrainer(cfg, PAIRS)


def _bon(model_dir):
    from rlhf_demo.bon.config import BoNConfig
    from rlhf_demo.bon.trainer import BoNTrainer

    cfg = BoNConfig.preset(
        "quick-cpu",
        model=str(model_dir),
        steps=1,
        batch_size=2,
        num_samples=2,
        response_tokens=4,
        kl_stop=0.0,
        max_seconds=0.0,
        eval_at_start=True,
        device="cpu",
    )
    return BoNTrainer(cfg, prompts=PROMPTS[:3], reward_fn=chars)


TRAINERS = {"ppo": _ppo, "dpo": _dpo, "grpo": _grpo, "reward": _reward, "bon": _bon}


@pytest.fixture(scope="module")
def written(tiny_model_dir) -> dict[str, set[str]]:
    """algo → every key its records held over one step (the step-0 evaluation and the final one included)."""
    out = {}
    for algo, make in TRAINERS.items():
        trainer = make(tiny_model_dir)
        recs = list(trainer.train())
        assert trainer.status == "finished", (algo, trainer.message)
        assert [r["step"] for r in recs] == [0, 1], algo
        assert any(k.startswith("eval/") for k in recs[-1]), algo  # the final evaluation ran
        out[algo] = {k for r in recs for k in r}
    return out


@pytest.mark.parametrize("algo", list(TRAINERS))
def test_every_key_a_trainer_writes_is_listed(written, algo):
    assert records.unlisted(written[algo]) == [], f"{algo} writes keys runs/records.py does not list"


def test_every_listed_key_is_written_by_some_trainer(written):
    seen = set().union(*written.values())
    assert sorted(set(records.KEYS) - seen - RARE) == []


def test_each_key_has_a_one_line_meaning():
    for key, meaning in records.KEYS.items():
        assert isinstance(meaning, str) and len(meaning) > 10 and "\n" not in meaning, key


def test_unlisted_names_what_is_missing():
    assert records.unlisted(["step", "eval/kl", "made_up/key"]) == ["made_up/key"]
