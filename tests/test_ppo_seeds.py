"""PPO's named seed streams (``ppo/seeds.py``) give exactly the numbers the unnamed multipliers gave
(seed · 100_003 + k for the rollouts, seed · 7919 + k for the mini-batch shuffles), and the trainer
draws from them."""

from __future__ import annotations

import torch

from rlhf_demo.ppo import seeds
from rlhf_demo.ppo import trainer as ppo_trainer

# (seed, updates done) → (rollout seed, first 3 draws of the sampler's generator, mini-batch seed,
# the first shuffle of 8 episodes); written down from the multipliers before they were named
PINNED = {
    (0, 0): (0, [0.9700530018065531, 0.707819864399788, 0.45938294312745087], 0, [4, 0, 7, 3, 2, 5, 1, 6]),
    (42, 0): (4200126, [0.31232911031796307, 0.6946985565303908, 0.6948139645314482], 332598, [5, 3, 6, 0, 7, 1, 2, 4]),
    (42, 3): (4200129, [0.6455232360959343, 0.5144505373546232, 0.7627038106497531], 332601, [0, 7, 5, 4, 2, 1, 3, 6]),
    (7, 12): (700033, [0.4073098928875478, 0.23248165171534363, 0.658306854582336], 55445, [2, 1, 6, 5, 0, 7, 3, 4]),
}


def test_the_named_streams_give_the_numbers_they_gave():
    assert (seeds.ROLLOUT_STREAM, seeds.MINIBATCH_STREAM) == (100_003, 7919)
    for (seed, k), (roll, draws, mb, order) in PINNED.items():
        assert seeds.rollout_seed(seed, k) == roll
        # the rollout's sampler draws float64 uniforms from a generator seeded so (decoding.sampling)
        g = torch.Generator().manual_seed(seeds.rollout_seed(seed, k))
        assert torch.rand(3, dtype=torch.float64, generator=g).tolist() == draws
        gen = seeds.minibatch_generator(seed, k)
        assert gen.initial_seed() == mb
        assert torch.randperm(8, generator=gen).tolist() == order


def test_the_trainer_draws_each_update_from_its_streams(tiny_model_dir, monkeypatch):
    """Two updates on the tiny model: the rollout of update k + 1 is sampled with seed · 100_003 + k and
    its mini-batches shuffled by a generator seeded with seed · 7919 + k (the real functions, watched)."""
    from rlhf_demo.ppo.config import preset

    rollout_seeds, shuffle_seeds = [], []
    real_rollout, real_epochs = ppo_trainer.rollout, ppo_trainer.ppo_epochs

    def watched_rollout(*a, seed, **kw):
        rollout_seeds.append(seed)
        return real_rollout(*a, seed=seed, **kw)

    def watched_epochs(*a, generator, **kw):
        shuffle_seeds.append(generator.initial_seed())
        return real_epochs(*a, generator=generator, **kw)

    monkeypatch.setattr(ppo_trainer, "rollout", watched_rollout)
    monkeypatch.setattr(ppo_trainer, "ppo_epochs", watched_epochs)
    cfg = preset(
        "quick-cpu",
        model=str(tiny_model_dir),
        seed=42,
        reward="length",
        gold_reward="none",
        kl_budget=0.0,
        batch_size=2,
        num_mini_batches=1,
        ppo_epochs=1,
        steps=2,
        response_tokens=(3, 3),
        eval_final=False,
        device="cpu",
    )
    tr = ppo_trainer.PPOTrainer(cfg, prompts=["The movie was", "I watched this film"])
    assert [r["step"] for r in tr.train()] == [1, 2]
    assert rollout_seeds == [4200126, 4200127]
    assert shuffle_seeds == [332598, 332599]
