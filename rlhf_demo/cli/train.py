"""``python -m rlhf_demo train --algo ppo|dpo|reward|grpo --out RUN [--preset NAME] [--KNOB VALUE ...]``: train a
policy (or a reward model) and write its run folder. The ``--algo`` choices are the registered algorithms
(``rlhf_demo.algorithms``) and every knob flag is built from their configs (``cli/flags.py``), so the
flags, their help and their ranges are the configs' own.

Example (the shipped example policy is made this way, see the README)::

    python -m rlhf_demo train --algo ppo --steps 40 --out runs/ppo-demo --seed 0

A reward model from preference pairs, then PPO on it (the gold reward, VADER, is logged beside it)::

    python -m rlhf_demo train --algo reward --out runs/rm
    python -m rlhf_demo train --algo ppo --reward rm:runs/rm --out runs/ppo-rm

Data-parallel over processes (one run folder, written by process 0; see docs/scaling.md, "Bigger models,
more GPUs")::

    accelerate launch --cpu --num_processes 2 -m rlhf_demo train --algo dpo --out runs/dpo-2p
"""

from __future__ import annotations

import sys
from pathlib import Path

from rlhf_demo.algorithms import ALGORITHMS, get, make_trainer
from rlhf_demo.classroom import costs, limits
from rlhf_demo.cli.flags import KNOB_DESTS, add_config_flags, config_from_args, flag, register
from rlhf_demo.config import show

HELP = (
    "Train a policy with PPO or GRPO (from a reward function) or DPO (from preference pairs), or a reward model "
    "(from preference pairs); writes a run folder."
)


def add_arguments(p):
    algos = list(ALGORITHMS.values())  # every registered algorithm (``rlhf_demo.algorithms``), the first the default
    p.add_argument("--algo", choices=[a.name for a in algos], default=algos[0].name, help=f"training algorithm (default {algos[0].name})")
    p.add_argument("--out", required=True, help="run folder to write (must not exist or be empty)")
    presets = "; ".join(f"{a.name}: {', '.join(a.config.PRESETS)} (default {a.config.DEFAULT_PRESET})" for a in algos)
    p.add_argument("--preset", default=None, help=f"named preset of the algorithm's settings ({presets})")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty run folder")
    p.add_argument("--quiet", action="store_true", help="print only the final line")
    p.add_argument(
        "--push-to-hub",
        default=None,
        metavar="REPO_ID",
        help="after training, write a model card into RUN/policy/ and push that folder to this Hub "
        "repository (offline or without a token: the card is written, nothing is pushed)",
    )
    add_config_flags(p, [a.config for a in algos])
    register([a.config for a in algos])


def _argv(args) -> list[str]:
    """The command's arguments as typed (``python -m rlhf_demo ...``), or rebuilt from ``args`` when
    called in-process (``main([...])``: ``sys.argv`` is then someone else's)."""
    if Path(sys.argv[0]).parent.name == "rlhf_demo":
        return sys.argv[1:]
    out = ["train"]
    for k, v in vars(args).items():
        if v is None or v is False and k not in KNOB_DESTS or k.startswith("_") or k == "command":
            continue
        out += [flag(k)] if v is True else [f"--no-{k.replace('_', '-')}"] if v is False else [flag(k), show(v)]
    return out


def data_line(alg, cfg, trainer) -> str:
    """What the trainer learns from: its preference pairs (and held-out pairs), or its reward (and gold)."""
    if alg.from_pairs:
        held = getattr(trainer, "heldout", None)
        return f"{len(trainer.rows)} preference pairs ({trainer.source})" + (f", {len(held)} held out" if held is not None else "")
    gold = getattr(cfg, "gold_reward", "none")
    return f"reward {getattr(cfg, 'reward', '?')}" + (f", gold {gold}" if gold != "none" else "")


def run(args) -> int:
    from rlhf_demo.runs import card
    from rlhf_demo.runs.folder import RunWriter, write_run
    from rlhf_demo.training import distributed
    from rlhf_demo.training.status import final_lines, progress_lines

    alg = get(args.algo)
    cfg = config_from_args(alg.config, args, args.preset)
    costs.check_training(cfg, limits.current())  # a shared server's limits, once (the trainer trusts cfg)
    RunWriter.check(args.out, args.overwrite)  # before a model is loaded
    n = distributed.planned_processes()
    if (unit := cfg.batch_unit()) is not None:  # a batch N processes cannot share: one line, before they start
        distributed.share(cfg.batch_size, "batch_size", unit, n=n)
    distributed.relaunch_cpu_processes(["-m", "rlhf_demo", *sys.argv[1:]], n)  # accelerate launch --cpu --num_processes N
    distributed.init()
    distributed.barrier()  # every process checked the folder before process 0 writes
    main, command = distributed.is_main(), card.command_line(_argv(args))
    args.quiet = args.quiet or not main  # one process prints
    hub_note = card.push_problem(args.push_to_hub) if args.push_to_hub else ""
    if hub_note and main:
        print(
            f"note: --push-to-hub {args.push_to_hub}: {hub_note}; the model card will be written, nothing pushed",
            file=sys.stderr,
            flush=True,
        )
    say = (lambda f, m: None) if args.quiet else (lambda f, m: print(m, file=sys.stderr, flush=True))
    trainer = make_trainer(cfg, progress=say)
    total = trainer.planned_steps() if hasattr(trainer, "planned_steps") else cfg.steps
    if not args.quiet:
        print(
            f"{alg.label} on {cfg.model}: {data_line(alg, cfg, trainer)}, {total} steps planned → {args.out}"
            + (f"; {trainer.note}" if getattr(trainer, "note", "") else ""),
            file=sys.stderr,
            flush=True,
        )
        for note in getattr(trainer, "notes", [])[:5]:
            print(f"note: {note}", file=sys.stderr)
    for rec in write_run(trainer, args.out, preset=args.preset, overwrite=args.overwrite, info={"command": command}):
        if not args.quiet:
            print("\n   ".join(progress_lines(cfg, rec, total)), flush=True)
    if not args.quiet and trainer.before_after:
        print("\nbefore → after (same fixed held-out queries, same seed):")
        for row in trainer.before_after:
            print(
                f"  {row['query']!r}\n    reference {row['reference_reward']:+.2f}: {row['reference']!r}"
                f"\n    policy    {row['policy_reward']:+.2f}: {row['policy']!r}"
            )
    if not main:
        return 0 if trainer.status in ("finished", "stopped") else 1
    print("\n".join(final_lines(trainer, args.out)))
    if args.push_to_hub and trainer.step_no > 0:
        print(card.push(args.out, args.push_to_hub, command))
    return 0 if trainer.status in ("finished", "stopped") else 1
