"""The PPO panel of the Training tab: preset, reward, prompts, every hyper-parameter with its help
text, Start/Stop, live curves, the current batch, and a before/after table at the end. Lays out and
wires only: the loop is ``rlhf_demo.ppo.PPOTrainer``, the figures ``rlhf_demo.plots``.

Start runs through the queue with the one training slot of the machine (``TRAINING_CONCURRENCY_ID``):
a second session waits and sees its position. Stop sets a per-session flag; the loop finishes its
current update, saves the policy and writes the run folder. The per-session ``gr.State`` holds only the
run folder's path, never a model.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import fields
from pathlib import Path

import gradio as gr
import pandas as pd

from rlhf_demo.data.prompts import PromptError, parse_prompts
from rlhf_demo.models.loading import ModelLoadError
from rlhf_demo.plots.training import KL_PANEL, PPO_PANELS, empty_figure, training_figure
from rlhf_demo.ppo.config import DEFAULT_PRESET, MAX_STEPS, PRESET_LABELS, PPOConfig, preset
from rlhf_demo.rewards.functions import REWARD_CHOICES, RewardError
from rlhf_demo.ui.context import TRAINING_CONCURRENCY_ID, AppContext

INTRO = """### PPO: learn from a reward model
Each **update** samples a batch of movie-review openings, lets the policy continue them, scores each text
with the reward (VADER sentiment by default), and pushes the policy toward higher reward with PPO — while a
per-token penalty **−β·KL** keeps it close to the reference (the same model with its LoRA adapter switched
off). Watch the reward rise, the KL grow, and the responses change. Held-out prompts (◆) are never trained on."""
USER_ERRORS = (ValueError, ModelLoadError, RewardError, PromptError, FileExistsError, FileNotFoundError)
H = PPOConfig.help

# Hyper-parameters shown in the UI: (field, kind, kwargs); kind ∈ slider/number/int/check/radio.
GROUPS: list[tuple[str, list[tuple]]] = [
    ("KL penalty", [
        ("beta", "number", {"label": "β (KL coefficient)"}),
        ("adaptive_kl", "check", {"label": "Adaptive β (KL controller)"}),
        ("kl_target", "number", {"label": "KL target (nats / response)"}),
        ("kl_horizon", "number", {"label": "Controller horizon (episodes)"}),
        ("beta_min", "number", {"label": "β floor (0 = none)"}),
        ("kl_budget", "number", {"label": "KL budget (0 = none)"}),
        ("kl_budget_lr_factor", "number", {"label": "Step after an undo (× learning rate)"}),
        ("kl_estimator", "radio", {"label": "KL estimator in the penalty", "choices": ["k1", "k3"]}),
        ("kl_control_estimate", "radio", {"label": "KL the controller reads", "choices": ["exact", "k1"]}),
    ]),
    ("Optimisation", [
        ("lr", "number", {"label": "Learning rate"}),
        ("batch_size", "int", {"label": "Batch size (episodes per update)"}),
        ("responses_per_query", "int", {"label": "Answers per query (k; leave-one-out baseline when > 1)"}),
        ("num_mini_batches", "int", {"label": "Mini-batches"}),
        ("ppo_epochs", "int", {"label": "PPO epochs"}),
        ("cliprange", "number", {"label": "Clip ε (policy)"}),
        ("cliprange_value", "number", {"label": "Clip (value)"}),
        ("vf_coef", "number", {"label": "Value loss weight"}),
        ("value_grad_to_policy", "check", {"label": "Value loss trains the shared backbone too"}),
        ("gamma", "number", {"label": "γ"}),
        ("lam", "number", {"label": "λ (GAE)"}),
        ("whiten_rewards", "check", {"label": "Whiten rewards"}),
        ("prefix_rewards", "check", {"label": "Credit each token with its change of the score (prefix shaping)"}),
        ("max_grad_norm", "number", {"label": "Gradient clip"}),
    ]),
    ("Rollouts", [
        ("query_min_tokens", "int", {"label": "Query tokens: min"}),
        ("query_max_tokens", "int", {"label": "Query tokens: max"}),
        ("response_min_tokens", "int", {"label": "Response tokens: min"}),
        ("response_max_tokens", "int", {"label": "Response tokens: max"}),
        ("temperature", "number", {"label": "Temperature"}),
        ("top_k", "int", {"label": "Top-k (0 = off)"}),
        ("top_p", "number", {"label": "Top-p (1 = off)"}),
    ]),
    ("Model, LoRA and evaluation", [
        ("model", "text", {"label": "Model"}),
        ("full_finetune", "check", {"label": "Full fine-tuning (no LoRA)"}),
        ("lora_r", "int", {"label": "LoRA rank"}),
        ("lora_alpha", "int", {"label": "LoRA alpha"}),
        ("lora_targets", "radio", {"label": "LoRA on", "choices": ["attention", "all-linear"]}),
        ("lora_layers", "int", {"label": "LoRA on the top N layers (0 = all)"}),
        ("eval_every", "int", {"label": "Held-out evaluation every N updates (0 = end only)"}),
        ("eval_prompts", "int", {"label": "Held-out prompts per evaluation (×2 samples)"}),
        ("eval_final", "check", {"label": "Evaluate at the end (~15 s)"}),
        ("seed", "int", {"label": "Seed"}),
    ]),
]
BATCH_COLUMNS = ["query", "response", "reward", "KL (k1)", "reward model output"]
BEFORE_AFTER_COLUMNS = ["query", "reference response", "reference reward", "policy response", "policy reward"]

_STOP_FLAGS: dict[str, threading.Event] = {}
"""session hash → its Stop flag (sessions never see each other's flags)."""
_FLAGS_LOCK = threading.Lock()


def _flag(request: gr.Request | None) -> threading.Event:
    key = getattr(request, "session_hash", None) or "anonymous"
    with _FLAGS_LOCK:
        return _STOP_FLAGS.setdefault(key, threading.Event())


def _component(name: str, kind: str, kw: dict, value):
    kw = {**kw, "info": H(name), "elem_id": f"ppo-{name.replace('_', '-')}"}
    if kind == "check":
        return gr.Checkbox(value, **kw)
    if kind == "radio":
        return gr.Radio(value=value, **kw)
    if kind == "int":
        return gr.Number(value, precision=0, **kw)
    if kind == "text":
        return gr.Textbox(value, **kw)
    return gr.Number(value, **kw)


def _short(details) -> str:
    """Raw reward-model output in one short line (VADER's dict, or a pipeline's label scores)."""
    if details is None:
        return ""
    if isinstance(details, dict):
        return ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in details.items())
    if isinstance(details, list):
        return ", ".join(f"{d.get('label')} {d.get('score', 0):.2f}" if isinstance(d, dict) else str(d) for d in details)
    return json.dumps(details)[:200]


def batch_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([[r["query"], r["response"], round(r["reward"], 3), round(r["kl"], 2), _short(r.get("details"))]
                         for r in rows], columns=BATCH_COLUMNS)


def before_after_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([[r["query"], r["reference"], round(r["reference_reward"], 3), r["policy"], round(r["policy_reward"], 3)]
                         for r in rows], columns=BEFORE_AFTER_COLUMNS)


def _clean_number(name: str, value):
    ftype = next(f.type for f in fields(PPOConfig) if f.name == name)
    if value is None:
        raise ValueError(f"{name} is empty")
    if ftype in ("int", int) and isinstance(value, float):
        if value != int(value):
            raise ValueError(f"{name} must be a whole number, got {value}")
        return int(value)
    return value


def make_config(preset_name: str, values: dict) -> PPOConfig:
    """UI values (field name → value) on top of a preset → a validated config (ValueError if not)."""
    clean = {k: _clean_number(k, v) for k, v in values.items()}
    return preset(preset_name, **clean).validate()


def _status(rec: dict, cfg: PPOConfig, t_start: float) -> str:
    step, total = rec.get("step", 0), cfg.steps
    per = rec.get("time_s", 0) / max(step, 1)
    left = (total - step) * per
    if cfg.max_seconds:
        left = min(left, max(0.0, cfg.max_seconds - rec.get("time_s", 0)))
    txt = (f"**Update {step}/{total}** · training time {rec.get('time_s', 0):.0f} s ({per:.1f} s/update) · "
           f"ETA ≈ {left:.0f} s · batch reward {rec.get('reward_mean', float('nan')):+.3f} · "
           f"KL {rec.get('objective/kl_exact', rec.get('kl', float('nan'))):.2f} nats · β {rec.get('beta', float('nan')):.3f}")
    if rec.get("kl_budget/rollback"):
        txt += (f"  \n⟲ The batch showed the policy past the KL budget ({cfg.kl_budget:g} nats): the last update was undone"
                + (f" and β raised to {rec.get('beta_next', float('nan')):.3f}." if rec.get("beta_next", 0) > rec.get("beta", 0)
                   else " (back to the policy before it)."))
    if rec.get("kl_budget/undone_at_check"):
        txt += (f"  \n⟲ Checked before evaluating: a fresh batch showed the last update past the KL budget "
                f"({rec['kl_budget/check_kl']:.2f} > {cfg.kl_budget:g} nats), so it was undone.")
    if "eval/reward_mean" in rec:
        txt += (f"  \nHeld-out: reward **{rec['eval/reward_mean']:+.3f}** ± {rec['eval/reward_sem']:.3f}, "
                f"KL **{rec['eval/kl']:.2f}** nats, distinct-2 {rec['eval/distinct2']:.2f}")
    return txt


def build(ctx: AppContext, demo: gr.Blocks) -> None:
    run_state = gr.State(None)  # the run folder of this session's latest run (a path string)
    defaults = preset(DEFAULT_PRESET)
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=1, min_width=340):
            preset_dd = gr.Dropdown([(label, key) for key, label in PRESET_LABELS.items()], value=DEFAULT_PRESET,
                                    label="Preset", elem_id="ppo-preset",
                                    info="Quick CPU demo learns in ~3 min; No KL shows reward hacking; Course needs the Hub.")
            reward = gr.Dropdown(REWARD_CHOICES, value=defaults.reward, label="Reward", allow_custom_value=True,
                                 info=H("reward"), elem_id="ppo-reward")
            steps = gr.Number(defaults.steps, precision=0, label=f"Updates (1–{MAX_STEPS})", info=H("steps"), elem_id="ppo-steps")
            max_seconds = gr.Number(180, label="Time budget (s of training, 0 = none)", info=H("max_seconds"), elem_id="ppo-seconds")
            prompts_file = gr.File(label="Prompts file (optional: .txt one per line, .csv/.tsv/.jsonl)",
                                   file_types=[".txt", ".csv", ".tsv", ".jsonl"], type="filepath", height=150,
                                   elem_id="ppo-prompts-file")
            comps: dict[str, gr.components.Component] = {}
            for title, items in GROUPS:
                with gr.Accordion(title, open=False):
                    for name, kind, kw in items:
                        comps[name] = _component(name, kind, kw, getattr(defaults, name))
            with gr.Row():
                start = gr.Button("Start training", variant="primary", elem_id="ppo-start")
                stop = gr.Button("Stop", variant="stop", elem_id="ppo-stop")
        with gr.Column(scale=3):
            status = gr.Markdown("Press **Start training**. One training runs at a time on this machine; others wait in line.",
                                 elem_id="ppo-status")
            plot = gr.Plot(empty_figure(), label="Training curves", elem_id="ppo-plot")
            batch_table = gr.Dataframe(headers=BATCH_COLUMNS, label="Current batch (query → response, reward)",
                                       wrap=True, max_height=360, elem_id="ppo-batch")
            before_after = gr.Dataframe(headers=BEFORE_AFTER_COLUMNS, wrap=True, max_height=360, elem_id="ppo-before-after",
                                        label="Before / after: the same held-out queries answered by the reference and the trained policy")
    names = list(comps)

    def on_preset(name):
        cfg = preset(name)
        return [cfg.reward, cfg.steps] + [getattr(cfg, n) for n in names]

    preset_dd.change(on_preset, preset_dd, [reward, steps] + [comps[n] for n in names], api_visibility="private")

    def train(data: dict, request: gr.Request, progress=gr.Progress()):
        flag = _flag(request)
        flag.clear()
        preset_name, pfile = data[preset_dd], data[prompts_file]
        try:
            cfg = make_config(preset_name, {"reward": data[reward], "steps": data[steps],
                                            "max_seconds": data[max_seconds] or 0, **{n: data[comps[n]] for n in names}})
            prompts = None
            if pfile:
                p = Path(pfile)
                prompts = parse_prompts(p.read_bytes(), p.name)
                cfg = preset(preset_name, **{**{f.name: getattr(cfg, f.name) for f in fields(cfg)}, "prompts": p.name})
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from exc
        from rlhf_demo.ppo.trainer import PPOTrainer

        out = Path(ctx.runs_dir) / f"ppo-{time.strftime('%Y%m%d-%H%M%S')}-{(getattr(request, 'session_hash', '') or 'x')[:6]}"
        progress(0, desc="Loading a training copy of the model…")
        yield (f"Loading a training copy of **{cfg.model}** and the reward…", empty_figure("Loading…"), None, None, str(out))
        try:
            trainer = PPOTrainer(cfg, out, prompts=prompts, stop=flag.is_set)
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from exc
        t0 = time.time()
        lines = {KL_PANEL: (cfg.kl_budget, f"KL budget {cfg.kl_budget:g}")} if cfg.kl_budget else None
        for rec in trainer.train():
            progress((rec["step"], cfg.steps), desc="PPO updates")
            df = pd.DataFrame(trainer.history)
            yield (_status(rec, cfg, t0), training_figure(df, PPO_PANELS, hlines=lines), batch_frame(trainer.last_batch),
                   gr.skip(), str(out))
        df = pd.DataFrame(trainer.history)
        final = f"**{trainer.status}**: {trainer.message}. Run folder: `{out}` (choose it in the Playground / KL tab)."
        if trainer.last_eval:
            ev = trainer.last_eval
            final += (f"  \nHeld-out at the end: reward **{ev['reward_mean']:+.3f}** ± {ev['reward_sem']:.3f}, "
                      f"KL **{ev['kl']:.2f}** nats, distinct-2 {ev['distinct2']:.2f}")
        yield (final, training_figure(df, PPO_PANELS, hlines=lines), batch_frame(trainer.last_batch),
               before_after_frame(trainer.before_after), str(out))

    inputs = {preset_dd, reward, steps, max_seconds, prompts_file, *comps.values()}
    start.click(train, inputs, [status, plot, batch_table, before_after, run_state],
                concurrency_limit=1, concurrency_id=TRAINING_CONCURRENCY_ID, show_progress_on=[status],
                api_visibility="private")

    def on_stop(request: gr.Request):
        _flag(request).set()
        gr.Info("Stopping after the current update; the run folder will be complete.")

    stop.click(on_stop, None, None, concurrency_limit=None, api_visibility="private")
