"""One PPO update on a fixed global batch, in one process or under ``accelerate launch --num_processes N``
(used by tests/test_ddp.py): ``python tests/ddp_ppo_update.py MODEL_DIR OUT.json``.

Every process samples the same global batch of 8 episodes (same seed), keeps its share (rows
rank·8/N … (rank+1)·8/N) and runs ``PPOTrainer.step`` on it; process 0 writes the update's record and
a checksum of the weights after it. One process runs the whole batch the same way, so the two files
must agree: the gradient averaged over the shares is the whole batch's gradient.
"""

import json
import sys
from dataclasses import replace

import torch

from rlhf_demo.training import distributed

distributed.relaunch_cpu_processes([__file__, *sys.argv[1:]])

from rlhf_demo.data.prompts import truncate_prompt  # noqa: E402
from rlhf_demo.ppo.config import PPOConfig  # noqa: E402
from rlhf_demo.ppo.forward import subset  # noqa: E402
from rlhf_demo.ppo.rollout import rollout  # noqa: E402
from rlhf_demo.ppo.trainer import PPOTrainer  # noqa: E402

B = 8
model_dir, out = sys.argv[1], sys.argv[2]
cfg = PPOConfig.preset(
    model=model_dir,
    batch_size=B,
    num_mini_batches=1,
    ppo_epochs=2,
    steps=1,
    kl_budget=0.0,
    gold_reward="none",
    eval_final=False,
    lora_layers=0,
    lr=1e-2,
)
trainer = PPOTrainer(cfg)
queries = [truncate_prompt(trainer.tok, p, 4) for p in trainer.prompts[:B]]
full = rollout(trainer.policy, trainer.value_head, trainer.tok, queries, 6, trainer.reward_fn, seed=123, trunk_layer=trainer.trunk_layer)
n, r = distributed.world_size(), distributed.rank()
idx = torch.arange(r * B // n, (r + 1) * B // n)
share = lambda x: x[idx] if torch.is_tensor(x) else [x[i] for i in idx.tolist()] if isinstance(x, list) else x  # noqa: E731
trainer._checked = replace(
    full,
    batch=subset(full.batch, idx),
    **{k: share(getattr(full, k)) for k in ("queries", "responses", "scores", "details", "logprobs", "ref_logprobs", "values", "exact_kl")},
)
record = trainer.step()
weights = sum(float(p.double().sum()) for p in trainer.all_params())
abs_weights = sum(float(p.double().abs().sum()) for p in trainer.all_params())
if distributed.is_main():
    keep = ("reward_mean", "objective/kl", "loss/policy_avg", "loss/value_avg", "grad_norm", "policy/approxkl_avg", "val/mean_value")
    json.dump(
        {
            "num_processes": n,
            "local_rows": len(idx),
            "samples": len(record["samples"]),
            "weights": weights,
            "abs_weights": abs_weights,
            **{k: record[k] for k in keep},
        },
        open(out, "w"),
    )
