"""``python -m rlhf_demo train --algo ppo|dpo``: the common flags; each algorithm adds its own
(``commands/train_ppo.py``, ``commands/train_dpo.py``) and runs the loop, writing a run folder."""
from __future__ import annotations

import importlib

HELP = "Train a policy with PPO (from a reward function) or DPO (from preference pairs); writes a run folder."
ALGOS = {"ppo": "rlhf_demo.cli.train_ppo", "dpo": "rlhf_demo.cli.train_dpo"}


def _algo_modules():
    for algo, modname in ALGOS.items():
        try:
            yield algo, importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name != modname:
                raise


def add_arguments(p):
    p.add_argument("--algo", choices=list(ALGOS), default="ppo", help="training algorithm (default ppo)")
    p.add_argument("--steps", type=int, default=None, help="number of updates (PPO) or optimizer steps (DPO)")
    p.add_argument("--out", required=True, help="run folder to write (must not exist or be empty)")
    p.add_argument("--model", default="default", help="policy to start from: 'default', a local folder or a Hub id")
    p.add_argument("--preset", default=None, help="named preset of hyper-parameters (see --help of each algorithm)")
    p.add_argument("--beta", type=float, default=None, help="KL coefficient β (PPO penalty / DPO temperature)")
    p.add_argument("--lr", "--learning-rate", dest="lr", type=float, default=None, help="learning rate")
    p.add_argument("--seed", type=int, default=None, help="random seed")
    p.add_argument("--batch-size", type=int, default=None, help="episodes per update (PPO) / pairs per step (DPO)")
    p.add_argument("--reward", default=None, help="reward for PPO training and for held-out evaluation: vader-positive (default), vader-negative, length, keyword:WORD, hf:MODEL:LABEL[:logit|prob]")
    p.add_argument("--prompts", default=None, help="prompts: 'builtin' (default), a .txt/.csv/.jsonl file, or hf:DATASET[:COLUMN]")
    p.add_argument("--eval-every", type=int, default=None, help="evaluate on held-out prompts every N steps (0 = only at the end)")
    p.add_argument("--full-finetune", action="store_true", help="train all weights instead of a LoRA adapter")
    p.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty run folder")
    p.add_argument("--quiet", action="store_true", help="print only the final summary")
    for algo, mod in _algo_modules():
        mod.add_arguments(p.add_argument_group(f"{algo.upper()} options"))


def run(args) -> int:
    mods = dict(_algo_modules())
    if args.algo not in mods:
        raise ValueError(f"algorithm {args.algo!r} is not available in this build")
    return mods[args.algo].run(args)
