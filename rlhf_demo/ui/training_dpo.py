"""The DPO panel of the Training tab: preset, hyper-parameters with help, the preference source
(shipped set / the Feedback tab's labels / an upload / a Hub dataset), Start/Stop, and live curves
every step. Lays out and wires only: the loop is ``rlhf_demo.dpo``, the figures ``rlhf_demo.plots``.

Start uses the machine's one training slot (``TRAINING_CONCURRENCY_ID``); Stop sets a per-session flag,
the trainer finishes its current step, saves the policy and completes the run folder.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import gradio as gr
import pandas as pd

from rlhf_demo.dpo.trainer import CHOSEN_GOES_DOWN, DEFAULT_PRESET, FIELD_HELP, LOSS_TYPES, MAX_STEPS, PRESETS, preset, run_to_folder, settings_dict
from rlhf_demo.data.feedback import FEEDBACK_ENV, FeedbackStore
from rlhf_demo.models.loading import ModelLoadError
from rlhf_demo.plots.training import empty_figure, training_figure
from rlhf_demo.data.preferences import PreferenceError, PreferenceSet, load_preferences, parse_preferences
from rlhf_demo.rewards.functions import REWARD_CHOICES, RewardError
from rlhf_demo.ui.context import TRAINING_CONCURRENCY_ID, AppContext

INTRO = """### DPO: learn straight from preference pairs
Each **step** takes a batch of (prompt, chosen, rejected) pairs and raises how much more likely the policy
makes the chosen response than the rejected one, *relative to the reference* (the same model with its LoRA
adapter off): loss = −log σ(β·[(log π(c) − log π_ref(c)) − (log π(r) − log π_ref(r))]). No reward model and no
sampling during training. Every few steps the policy is scored on held-out prompts (◆) with the same
sentiment reward and KL as PPO, so both algorithms land on the same reward–KL plot (Runs tab)."""

DPO_PANELS: list[tuple[str, list[str]]] = [
    ("Loss −log σ(β·margin)", ["loss"]),
    ("Implicit rewards β·log π/π_ref", ["rewards/chosen", "rewards/rejected"]),
    ("Reward margin (chosen − rejected)", ["rewards/margins"]),
    ("Preference accuracy (r_c > r_r)", ["rewards/accuracies"]),
    ("log π(response): chosen vs rejected", ["logps/chosen", "logps/rejected"]),
    ("Held-out reward ◆", ["eval/reward_mean"]),
    ("Held-out KL(π‖π_ref) ◆ (nats / response)", ["eval/kl"]),
]
SOURCES = ["Shipped synthetic set", "Feedback labels", "Upload (JSONL / CSV)", "Hub dataset id"]
USER_ERRORS = (ValueError, ModelLoadError, RewardError, PreferenceError, FileExistsError, FileNotFoundError)
H = FIELD_HELP

# (field, label, kind) for the hyper-parameter widgets; kind: number / int / check / loss
FIELDS = [
    ("beta", "β", "number"), ("loss_type", "Loss type", "loss"), ("sft_weight", "NLL weight on chosen (0 = plain DPO)", "number"), ("learning_rate", "Learning rate", "number"),
    ("epochs", "Epochs", "number"), ("batch_size", "Batch size (pairs per step)", "int"),
    ("max_length", "Max length (tokens)", "int"), ("full_finetune", "Full fine-tuning (all weights)", "check"),
    ("lora_r", "LoRA rank", "int"), ("eval_every", "Evaluate every N steps", "int"),
    ("kl_target", "Stop at held-out KL (nats, 0 = never)", "number"),
    ("max_seconds", "Time budget (s of training, 0 = none)", "number"), ("seed", "Seed", "int"),
    ("model", "Model to start from", "text"),
]

_STOP_FLAGS: dict[str, threading.Event] = {}
_LOCK = threading.Lock()


def _flag(request) -> threading.Event:
    key = getattr(request, "session_hash", None) or "anonymous"
    with _LOCK:
        return _STOP_FLAGS.setdefault(key, threading.Event())


def feedback_store(ctx: AppContext) -> FeedbackStore:
    """The Feedback tab's label file (shared by the DPO panel and the Feedback tab)."""
    env = os.environ.get(FEEDBACK_ENV)
    return FeedbackStore(env or Path(ctx.runs_dir) / "feedback" / "labels.jsonl")


def load_source(ctx: AppContext, source: str, upload: str | None, hub_id: str) -> PreferenceSet:
    if source == SOURCES[1]:
        store = feedback_store(ctx)
        rows = store.export_pairs()
        if not rows:
            raise PreferenceError("no A/B labels yet: label some pairs in the Feedback tab (ties and skips carry no preference)")
        return PreferenceSet(rows, [], f"feedback ({store.path})")
    if source == SOURCES[2]:
        if not upload:
            raise PreferenceError("choose a .jsonl or .csv file with prompt, chosen, rejected columns")
        p = Path(upload)
        return parse_preferences(p.read_bytes(), p.name)
    if source == SOURCES[3]:
        if not (hub_id or "").strip():
            raise PreferenceError("type a Hub dataset id, e.g. trl-lib/ultrafeedback_binarized (needs the network)")
        return load_preferences("hf:" + hub_id.strip())
    return load_preferences("shipped")


def _value(kind: str, v):
    if kind == "int":
        return None if v is None or v == "" else int(v)
    if kind == "number":
        return None if v is None or v == "" else float(v)
    if kind == "text":
        return (v or "").strip() or None
    return v


def make_settings(preset_name: str, values: dict, steps):
    over = {name: _value(kind, values[name]) for name, _l, kind in FIELDS}
    over["kl_target"] = over["kl_target"] or None
    over["max_seconds"] = over["max_seconds"] or None
    s = preset(preset_name, **{k: v for k, v in over.items() if v is not None})
    from dataclasses import replace

    s = replace(s, kl_target=over["kl_target"], max_seconds=over["max_seconds"],
                steps=int(steps) if steps else None)
    return s.validate()


def _status(rec: dict, setup: dict, t0: float) -> str:
    total = setup.get("max_steps") or 0
    step = rec.get("step", 0)
    line = f"Step **{step}** / {total}" if total else f"Step **{step}**"
    if step and "time_s" in rec:
        rate = rec["time_s"] / step
        line += f" · {rec['time_s']:.0f} s of training · {rate:.1f} s/step"
        if total > step:
            line += f" · ETA ≈ {(total - step) * rate:.0f} s (+ evaluations)"
    if "loss" in rec:
        line += (f"  \nloss {rec['loss']:.4f} · margin {rec.get('rewards/margins', 0):+.3f} · "
                 f"accuracy {rec.get('rewards/accuracies', 0):.2f}")
    return line


def samples_frame(rows) -> pd.DataFrame:
    rows = rows or []
    return pd.DataFrame([{"query": r["query"], "response": r["response"], "reward": round(float(r["reward"]), 3)}
                         for r in rows[:16]], columns=["query", "response", "reward"])


def build(ctx: AppContext, demo: gr.Blocks) -> None:
    defaults = PRESETS[DEFAULT_PRESET]
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=1, min_width=340):
            preset_dd = gr.Dropdown(list(PRESETS), value=DEFAULT_PRESET, label="Preset", elem_id="dpo-preset",
                                    info="Quick CPU demo: LoRA, about 2–3 minutes on a laptop CPU.")
            source = gr.Radio(SOURCES, value=SOURCES[0], label="Preference pairs", elem_id="dpo-source",
                              info="Shipped: best vs worst of 4 samples from the base model, scored by VADER. "
                                   "Feedback: your A/B labels from the Feedback tab.")
            upload = gr.File(label="Upload pairs (.jsonl or .csv: prompt, chosen, rejected)", file_types=[".jsonl", ".csv", ".json", ".tsv"],
                             type="filepath", height=150, visible=False, elem_id="dpo-upload")
            hub_id = gr.Textbox(label="Hub dataset id (online only)", visible=False, elem_id="dpo-hub",
                                placeholder="trl-lib/ultrafeedback_binarized")
            check = gr.Button("Check the pairs", size="sm", elem_id="dpo-check")
            data_info = gr.Markdown("", elem_id="dpo-data-info")
            steps = gr.Number(0, precision=0, label=f"Steps (0 = by epochs; at most {MAX_STEPS})", elem_id="dpo-steps",
                              info=FIELD_HELP["steps"])
            comps = {}
            with gr.Accordion("Hyper-parameters", open=False):
                for name, label, kind in FIELDS:
                    value = getattr(defaults, name)
                    kw = dict(label=label, info=H.get(name, ""), elem_id=f"dpo-{name.replace('_', '-')}")
                    if kind == "text":
                        comps[name] = gr.Textbox(value, **kw)
                    elif kind == "check":
                        comps[name] = gr.Checkbox(value, **kw)
                    elif kind == "loss":
                        comps[name] = gr.Dropdown(list(LOSS_TYPES), value=value, **kw)
                    elif kind == "int":
                        comps[name] = gr.Number(value or 0, precision=0, **kw)
                    else:
                        comps[name] = gr.Number(value or 0, **kw)
            eval_reward = gr.Dropdown(REWARD_CHOICES, value=defaults.eval_reward, allow_custom_value=True,
                                      label="Held-out evaluation reward", info=H["eval_reward"], elem_id="dpo-eval-reward")
            with gr.Row():
                start = gr.Button("Start DPO", variant="primary", elem_id="dpo-start")
                stop = gr.Button("Stop", variant="stop", elem_id="dpo-stop")
        with gr.Column(scale=3):
            status = gr.Markdown("Press **Start DPO**. One training runs at a time on this machine; others wait in line.",
                                 elem_id="dpo-status")
            plot = gr.Plot(empty_figure("Start a DPO run to see loss, rewards, margins and held-out reward/KL here."),
                           label="DPO curves", elem_id="dpo-plot")
            gr.Markdown(CHOSEN_GOES_DOWN, elem_id="dpo-explain")
            samples = gr.Dataframe(headers=["query", "response", "reward"], wrap=True, max_height=320,
                                   label="Latest held-out samples from the policy", elem_id="dpo-samples")
    # the Feedback tab (built later) can point this panel at the labels
    setattr(ctx, "dpo_source", source)

    source.change(lambda s: (gr.update(visible=s == SOURCES[2]), gr.update(visible=s == SOURCES[3])), source,
                  [upload, hub_id], api_visibility="private")
    names = [n for n, _l, _k in FIELDS]

    def on_preset(name):
        s = PRESETS.get(name, defaults)
        return [getattr(s, n) if getattr(s, n) is not None else 0 for n in names]

    preset_dd.change(on_preset, preset_dd, [comps[n] for n in names], api_visibility="private")

    def on_check(src, up, hub):
        try:
            prefs = load_source(ctx, src, up, hub)
        except USER_ERRORS as exc:
            return f"⚠️ {exc}"
        text = f"✅ {len(prefs)} usable pairs"
        if prefs.errors:
            text += f"; **{len(prefs.errors)} rows left out**:\n" + "\n".join(f"- {e}" for e in prefs.errors[:20])
        return text

    check.click(on_check, [source, upload, hub_id], data_info, api_visibility="private")

    def train(data: dict, request: gr.Request):
        flag = _flag(request)
        flag.clear()
        try:
            settings = make_settings(data[preset_dd], {n: data[comps[n]] for n in names}, data[steps])
            from dataclasses import replace

            settings = replace(settings, eval_reward=data[eval_reward] or "vader-positive").validate()
            prefs = load_source(ctx, data[source], data[upload], data[hub_id])
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from exc
        from rlhf_demo.runs.folder import RunWriter

        out = Path(ctx.runs_dir) / f"dpo-{time.strftime('%Y%m%d-%H%M%S')}-{(getattr(request, 'session_hash', '') or 'x')[:6]}"
        note = f" ({len(prefs.errors)} rows left out)" if prefs.errors else ""
        yield (f"Loading a training copy of **{settings.model}**, tokenising {len(prefs)} pairs{note} and computing "
               f"reference log-probabilities…", empty_figure("Preparing…"), None)
        try:
            writer = RunWriter(out, {"algo": "dpo", "preset": data[preset_dd], **settings_dict(settings),
                                     "preferences": prefs.source, "n_pairs": len(prefs)})
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from exc
        records, setup, end, last_samples = [], {}, {}, None
        t0 = time.time()
        try:
            for rec in run_to_folder(settings, prefs.rows, writer, preference_source=prefs.source, stop_event=flag):
                if rec.get("event") == "setup":
                    setup = rec
                    msg = f"Training on {rec['pairs']} pairs, {rec['max_steps']} steps planned (setup {rec['setup_s']:.0f} s)."
                    if rec.get("note"):
                        msg += f"  \n{rec['note']}"
                    yield msg, gr.skip(), gr.skip()
                    continue
                if rec.get("event") == "end":
                    end = rec
                    continue
                records.append({k: v for k, v in rec.items() if not k.startswith("_")})
                if rec.get("_samples"):
                    last_samples = samples_frame(rec["_samples"])
                df = pd.DataFrame(records)
                yield (_status(rec, setup, t0), training_figure(df, DPO_PANELS, bands={}),
                       last_samples if last_samples is not None else gr.skip())
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from exc
        df = pd.DataFrame(records)
        final = f"**{end.get('status', 'stopped')}**: {end.get('message', '')}. Run folder: `{out}` (compare it in the Runs tab)."
        evals = [r for r in records if "eval/kl" in r]
        if evals:
            e = evals[-1]
            final += (f"  \nHeld-out at step {e['step']}: reward **{e['eval/reward_mean']:+.3f}** ± {e['eval/reward_sem']:.3f}, "
                      f"KL **{e['eval/kl']:.2f}** nats, distinct-2 {e['eval/distinct2']:.2f}")
        yield final, training_figure(df, DPO_PANELS, bands={}), last_samples if last_samples is not None else gr.skip()

    inputs = {preset_dd, source, upload, hub_id, steps, eval_reward, *comps.values()}
    start.click(train, inputs, [status, plot, samples], concurrency_limit=1, concurrency_id=TRAINING_CONCURRENCY_ID,
                show_progress_on=[status], api_visibility="private")

    def on_stop(request: gr.Request):
        _flag(request).set()
        gr.Info("Stopping after the current step; the policy is saved and the run folder completed.")

    stop.click(on_stop, None, None, concurrency_limit=None, api_visibility="private")
