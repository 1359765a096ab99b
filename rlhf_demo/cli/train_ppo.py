"""``python -m rlhf_demo train --algo ppo``: PPO options, and the loop printed one line per update.

Example (the shipped example policy was made this way, see the README)::

    python -m rlhf_demo train --algo ppo --steps 40 --out runs/ppo-demo --seed 0
"""
from __future__ import annotations

import sys

from rlhf_demo.ppo.config import PRESETS, PPOConfig


def _range(text: str) -> tuple[int, int]:
    """'12' → (12, 12); '4:16' → (4, 16)."""
    try:
        if ":" in text:
            a, b = text.split(":", 1)
            return int(a), int(b)
        return int(text), int(text)
    except ValueError:
        raise ValueError(f"length {text!r} must be N or MIN:MAX (integers)") from None


def add_arguments(g) -> None:
    h = PPOConfig.help
    g.add_argument("--ppo-epochs", type=int, default=None, help=h("ppo_epochs"))
    g.add_argument("--ppo-mini-batches", type=int, default=None, help=h("num_mini_batches"))
    g.add_argument("--responses-per-query", type=int, default=None, metavar="K", help=h("responses_per_query"))
    g.add_argument("--response-length", default=None, metavar="N|MIN:MAX", help="response tokens per episode (default 12)")
    g.add_argument("--ppo-query-length", default=None, metavar="N|MIN:MAX", help="query tokens per prompt (default 2:8)")
    g.add_argument("--kl-target", type=float, default=None, help=h("kl_target") + " Turns the adaptive controller on.")
    g.add_argument("--kl-horizon", type=float, default=None, help=h("kl_horizon"))
    g.add_argument("--beta-min", type=float, default=None, help=h("beta_min"))
    g.add_argument("--kl-budget", type=float, default=None, help=h("kl_budget"))
    g.add_argument("--kl-budget-step", type=float, default=None, help=h("kl_budget_lr_factor"))
    g.add_argument("--fixed-kl", action="store_true", help="keep β fixed (no adaptive controller)")
    g.add_argument("--kl-estimator", choices=["k1", "k3"], default=None, help=h("kl_estimator"))
    g.add_argument("--kl-control", choices=["exact", "k1"], default=None, help=h("kl_control_estimate"))
    g.add_argument("--ppo-clip", type=float, default=None, help=h("cliprange"))
    g.add_argument("--ppo-value-clip", type=float, default=None, help=h("cliprange_value"))
    g.add_argument("--ppo-vf-coef", type=float, default=None, help=h("vf_coef"))
    g.add_argument("--ppo-value-grad", choices=["head", "policy"], default=None,
                   help="what the value loss trains: 'head' = the value head alone, on detached hidden states (quick "
                        "preset; the critic costs no KL), 'policy' = the head and the shared backbone/LoRA (TRL's design)")
    g.add_argument("--ppo-gamma", type=float, default=None, help=h("gamma"))
    g.add_argument("--ppo-lam", type=float, default=None, help=h("lam"))
    g.add_argument("--ppo-whiten-rewards", action="store_true", default=None, help=h("whiten_rewards"))
    g.add_argument("--ppo-prefix-rewards", action="store_true", default=None, help=h("prefix_rewards"))
    g.add_argument("--ppo-temperature", type=float, default=None, help=h("temperature"))
    g.add_argument("--ppo-top-k", type=int, default=None, help=h("top_k"))
    g.add_argument("--ppo-top-p", type=float, default=None, help=h("top_p"))
    g.add_argument("--ppo-lora-r", type=int, default=None, help=h("lora_r"))
    g.add_argument("--ppo-lora-alpha", type=int, default=None, help=h("lora_alpha"))
    g.add_argument("--ppo-lora-targets", choices=["attention", "all-linear"], default=None, help=h("lora_targets"))
    g.add_argument("--ppo-lora-layers", type=int, default=None, metavar="N", help=h("lora_layers"))
    g.add_argument("--ppo-max-seconds", type=float, default=None, help=h("max_seconds"))
    g.add_argument("--ppo-eval-at", default=None, metavar="S1,S2,...", help="evaluate on held-out prompts at these training times (seconds)")
    g.add_argument("--ppo-eval-at-start", action="store_true", default=None, help=h("eval_at_start"))
    g.add_argument("--ppo-no-final-eval", action="store_true", help="skip the held-out evaluation at the end (~15 s)")
    g.add_argument("--ppo-device", choices=["cpu", "cuda"], default=None, help="device (default: CUDA if available)")


def config_from_args(args) -> PPOConfig:
    """Common flags + PPO flags → a validated PPOConfig (ValueError with a clear message if not)."""
    from rlhf_demo.ppo.config import preset

    preset_name = getattr(args, "preset", None)
    if preset_name is not None and preset_name not in PRESETS:
        raise ValueError(f"unknown PPO preset {preset_name!r}: choose one of {', '.join(PRESETS)}")
    o = dict(
        steps=args.steps, model=args.model, beta=args.beta, lr=args.lr, seed=args.seed, batch_size=args.batch_size,
        reward=args.reward, prompts=args.prompts, eval_every=args.eval_every,
        full_finetune=True if getattr(args, "full_finetune", False) else None,
        ppo_epochs=args.ppo_epochs, num_mini_batches=args.ppo_mini_batches,
        responses_per_query=args.responses_per_query, kl_target=args.kl_target,
        kl_horizon=args.kl_horizon, beta_min=args.beta_min, kl_budget=args.kl_budget, kl_budget_lr_factor=args.kl_budget_step, kl_estimator=args.kl_estimator, cliprange=args.ppo_clip,
        cliprange_value=args.ppo_value_clip,
        value_grad_to_policy=None if args.ppo_value_grad is None else args.ppo_value_grad == "policy", vf_coef=args.ppo_vf_coef, gamma=args.ppo_gamma, lam=args.ppo_lam,
        whiten_rewards=args.ppo_whiten_rewards, prefix_rewards=args.ppo_prefix_rewards, temperature=args.ppo_temperature, top_k=args.ppo_top_k,
        top_p=args.ppo_top_p, lora_r=args.ppo_lora_r, lora_alpha=args.ppo_lora_alpha,
        lora_targets=args.ppo_lora_targets, lora_layers=args.ppo_lora_layers, kl_control_estimate=args.kl_control,
        max_seconds=args.ppo_max_seconds,
        eval_at_start=args.ppo_eval_at_start, device=args.ppo_device,
    )
    if args.response_length is not None:
        o["response_min_tokens"], o["response_max_tokens"] = _range(args.response_length)
    if args.ppo_query_length is not None:
        o["query_min_tokens"], o["query_max_tokens"] = _range(args.ppo_query_length)
    if args.ppo_eval_at:
        try:
            o["eval_at_seconds"] = tuple(float(s) for s in args.ppo_eval_at.split(",") if s.strip())
        except ValueError:
            raise ValueError(f"--ppo-eval-at takes seconds separated by commas, not {args.ppo_eval_at!r}") from None
    if args.ppo_no_final_eval:
        o["eval_final"] = False
    if args.kl_target is not None:
        o["adaptive_kl"] = True
    if args.fixed_kl:
        o["adaptive_kl"] = False
    if args.beta == 0 and args.kl_target is None:
        o["adaptive_kl"] = False  # β = 0 means "no penalty": nothing for a controller to scale
    if args.beta is not None and args.beta_min is None:
        o["beta_min"] = min(args.beta, preset(preset_name).beta_min)  # a lower --beta lowers the floor with it
    return preset(preset_name, **o).validate()


def _fmt(rec: dict, total: int) -> str:
    s = (f"step {rec['step']:>3}/{total}  t={rec.get('time_s', 0):6.1f}s  reward {rec.get('reward_mean', float('nan')):+.3f}"
         f" ± {rec.get('reward_std', float('nan')):.3f}  kl {rec.get('kl', float('nan')):6.2f}  β {rec.get('beta', float('nan')):.4f}")
    if "time/update" in rec:
        s += f"  ({rec['time/update']:.1f} s/update)"
    if rec.get("kl_budget/rollback"):
        s += f"\n   KL budget crossed (exact KL {rec['objective/kl_exact']:.2f}): last update undone"
        if rec.get("beta_next", 0) > rec.get("beta", 0):
            s += f", β → {rec['beta_next']:.4f}"
    if rec.get("kl_budget/undone_at_check"):
        s += f"\n   checked before evaluating: KL {rec['kl_budget/check_kl']:.2f} past the budget, last update undone"
    if "eval/reward_mean" in rec:
        s += (f"\n   held-out: reward {rec['eval/reward_mean']:+.3f} ± {rec['eval/reward_sem']:.3f} (sem)"
              f"  KL {rec['eval/kl']:.2f} nats  distinct-2 {rec['eval/distinct2']:.2f}")
    return s


def run(args) -> int:
    from rlhf_demo.ppo.trainer import PPOTrainer

    cfg = config_from_args(args)
    quiet = getattr(args, "quiet", False)
    say = (lambda f, m: None) if quiet else (lambda f, m: print(m, file=sys.stderr))
    trainer = PPOTrainer(cfg, args.out, overwrite=getattr(args, "overwrite", False), progress=say)
    if not quiet:
        print(f"PPO on {cfg.model}: {trainer.n_trainable:,} trainable parameters, reward {cfg.reward}, "
              f"{cfg.steps} updates × {cfg.batch_size} episodes → {args.out}")
    for rec in trainer.train():
        if not quiet:
            print(_fmt(rec, cfg.steps), flush=True)
    if not quiet and trainer.before_after:
        print("\nbefore → after (same fixed held-out queries, same seed):")
        for row in trainer.before_after:
            print(f"  {row['query']!r}\n    reference {row['reference_reward']:+.2f}: {row['reference']!r}"
                  f"\n    policy    {row['policy_reward']:+.2f}: {row['policy']!r}")
    print(f"{trainer.status}: {trainer.message}. Run folder: {args.out} (policy in {args.out}/policy)")
    return 0 if trainer.status in ("finished", "stopped") else 1
