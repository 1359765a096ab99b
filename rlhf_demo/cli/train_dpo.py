"""``python -m rlhf_demo train --algo dpo``: DPO from preference pairs (``rlhf_demo.dpo``), writing a run
folder: config.json, metrics.jsonl (one line per optimizer step), samples.jsonl, summary.json, policy/."""
from __future__ import annotations

import sys
import time

from rlhf_demo.dpo.trainer import FIELD_HELP, LOSS_TYPES, PRESETS


def add_arguments(g) -> None:
    h = FIELD_HELP.get
    g.add_argument("--preferences", default=None,
                   help="preference pairs: 'shipped' (default: the synthetic set shipped with the project), "
                        "'feedback' (the Feedback tab's labels), a .jsonl/.csv file with prompt/chosen/rejected, "
                        "or hf:DATASET[:SPLIT]")
    g.add_argument("--loss-type", choices=LOSS_TYPES, default=None, help=h("loss_type"))
    g.add_argument("--max-length", type=int, default=None, help=h("max_length") + " (default 32)")
    g.add_argument("--epochs", type=float, default=None, help=h("epochs") + " (default 1)")
    g.add_argument("--dpo-label-smoothing", type=float, default=None, help=h("label_smoothing"))
    g.add_argument("--dpo-sft-weight", type=float, default=None, help=h("sft_weight"))
    g.add_argument("--dpo-lora-r", type=int, default=None, help="LoRA rank (default 8)")
    g.add_argument("--dpo-lora-alpha", type=int, default=None, help="LoRA alpha (default 16)")
    g.add_argument("--dpo-lora-targets", default=None, help=h("lora_targets"))
    g.add_argument("--dpo-kl-stop", type=float, default=None, help=h("kl_target"))
    g.add_argument("--dpo-time-budget", type=float, default=None, help=h("max_seconds"))
    g.add_argument("--dpo-eval-at", default=None, metavar="S1,S2,...",
                   help="also evaluate on held-out prompts at these training times (seconds)")
    g.add_argument("--dpo-no-precompute", action="store_true", help="compute reference log-probs at every step instead of once")
    g.add_argument("--dpo-gradient-checkpointing", action="store_true", help=h("gradient_checkpointing"))


def settings_from_args(args):
    from rlhf_demo.dpo.trainer import preset

    name = args.preset
    if name is not None and name not in PRESETS:
        # allow a case-insensitive prefix ("quick", "ipo", ...)
        matches = [p for p in PRESETS if p.lower().startswith(name.lower())]
        if len(matches) != 1:
            raise ValueError(f"unknown DPO preset {name!r}; choose one of: {'; '.join(PRESETS)}")
        name = matches[0]
    eval_at = ()
    if args.dpo_eval_at:
        try:
            eval_at = tuple(float(x) for x in args.dpo_eval_at.split(",") if x.strip())
        except ValueError as exc:
            raise ValueError(f"--dpo-eval-at takes comma-separated seconds, got {args.dpo_eval_at!r}") from exc
    return preset(
        name,
        model=args.model,
        beta=args.beta,
        learning_rate=args.lr,
        seed=args.seed,
        batch_size=args.batch_size,
        steps=args.steps,
        eval_every=args.eval_every,
        eval_reward=args.reward,
        full_finetune=True if args.full_finetune else None,
        loss_type=args.loss_type,
        max_length=args.max_length,
        epochs=args.epochs,
        label_smoothing=args.dpo_label_smoothing,
        sft_weight=args.dpo_sft_weight,
        lora_r=args.dpo_lora_r,
        lora_alpha=args.dpo_lora_alpha,
        lora_targets=args.dpo_lora_targets,
        kl_target=args.dpo_kl_stop,
        max_seconds=args.dpo_time_budget,
        eval_at_seconds=eval_at or None,
        precompute_ref=False if args.dpo_no_precompute else None,
        gradient_checkpointing=True if args.dpo_gradient_checkpointing else None,
    ).validate()


def load_pairs(source: str | None):
    """Preference rows from the CLI's --preferences value ('feedback' = the Feedback tab's labels)."""
    from rlhf_demo.data.preferences import PreferenceError, PreferenceSet, load_preferences

    if source == "feedback":
        from rlhf_demo.data.feedback import FeedbackStore

        store = FeedbackStore()
        rows = store.export_pairs()
        if not rows:
            raise PreferenceError(f"no usable human labels in {store.path} (label some pairs in the Feedback tab)")
        return PreferenceSet(rows, [], str(store.path))
    return load_preferences(source)


def run(args) -> int:
    from rlhf_demo.dpo.trainer import run_to_folder, settings_dict
    from rlhf_demo.runs.folder import RunWriter

    if args.prompts not in (None, "", "builtin"):
        raise ValueError("DPO trains on preference pairs, not prompts: use --preferences (build a set with "
                         "`python -m rlhf_demo preferences --prompt-file ...`)")
    settings = settings_from_args(args)
    prefs = load_pairs(args.preferences)
    if prefs.errors and not args.quiet:
        print(f"note: {len(prefs.errors)} preference rows left out: " + "; ".join(prefs.errors[:5]), file=sys.stderr)
    config = {"algo": "dpo", "preset": args.preset, **settings_dict(settings),
              "preferences": prefs.source, "n_pairs": len(prefs)}
    writer = RunWriter(args.out, config, overwrite=args.overwrite)
    t0 = time.time()
    end = {}
    last_eval = {}
    for rec in run_to_folder(settings, prefs.rows, writer, preference_source=prefs.source):
        if rec.get("event") == "setup":
            if not args.quiet:
                print(f"DPO on {rec['pairs']} pairs, {rec['max_steps']} steps planned, "
                      f"{rec['trainable_params']:,} trainable parameters (setup {rec['setup_s']:.0f} s)"
                      + (f"; {rec['note']}" if rec["note"] else ""), file=sys.stderr, flush=True)
        elif rec.get("event") == "end":
            end = rec
        else:
            if "kl" in rec:
                last_eval = rec
            if not args.quiet:
                parts = [f"step {rec['step']:4d}", f"t {rec['time_s']:6.1f}s"]
                if "loss" in rec:
                    parts += [f"loss {rec['loss']:.4f}", f"margin {rec.get('rewards/margins', 0):+.3f}",
                              f"acc {rec.get('rewards/accuracies', 0):.2f}"]
                if "kl" in rec:
                    parts += [f"held-out reward {rec['reward_mean']:+.3f}", f"KL {rec['kl']:.2f}"]
                print("  ".join(parts), file=sys.stderr, flush=True)
    msg = f"{end.get('status', '?')}: {end.get('message', '')}; run folder {writer.dir} ({time.time() - t0:.0f} s)"
    if last_eval:
        msg += f"; held-out reward {last_eval['reward_mean']:+.3f}, KL {last_eval['kl']:.2f}"
    print(msg)
    return 0 if end.get("status") in ("finished", "stopped") else 1
