"""The Feedback tab: a prompt and two responses from the base model; the learner picks A, B, tie or skip
(buttons or the keys 1 / 2 / 3 / 4). Each label is appended to a JSONL file and fsynced before the
next pair is drawn, so closing the tab loses nothing. Counts, a download of the pairs in TRL's
prompt/chosen/rejected format, and "Use for DPO" (points the DPO panel at these labels).
Lays out and wires only: the store is ``rlhf_demo.data.feedback``.
"""
from __future__ import annotations

import random
import time
from pathlib import Path

import gradio as gr

from rlhf_demo.data.prompts import builtin_prompts
from rlhf_demo.data.feedback import make_pair
from rlhf_demo.models.loading import DEFAULT_MODEL, ModelLoadError
from rlhf_demo.ui.context import AppContext
from rlhf_demo.ui.training_dpo import SOURCES, feedback_store

INTRO = """### Human feedback: which continuation is better?
Two responses are sampled from the base model for the same opening. Pick the one you prefer — **A**, **B**,
**tie** or **skip** (keys **1 2 3 4** when no text box is focused). Every label is saved to disk the moment
you click. Your A/B labels are preference pairs: train on them with **DPO** (Training tab → DPO →
"Feedback labels")."""

KEYS_JS = """
() => {
  if (window.__rlhfFeedbackKeys) return;
  window.__rlhfFeedbackKeys = true;
  const ids = {"1": "fb-a", "2": "fb-b", "3": "fb-tie", "4": "fb-skip"};
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable)) return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const id = ids[e.key];
    if (!id) return;
    const btn = document.getElementById(id);
    if (btn && btn.offsetParent !== null && !btn.disabled) { e.preventDefault(); btn.click(); }
  });
}
"""


def counts_md(c: dict, session_total: int) -> str:
    return (f"**{c['total']}** labels on disk — A {c['A']} · B {c['B']} · tie {c['tie']} · skip {c['skip']} — "
            f"**{c['pairs']} usable pairs** for DPO. This session: {session_total}.")


def build(ctx: AppContext, demo: gr.Blocks) -> None:
    store = feedback_store(ctx)
    pair = gr.State(None)          # (prompt, response A, response B) of the pair on screen
    session_n = gr.State(0)
    gr.Markdown(INTRO)
    with gr.Row():
        prompt = gr.Textbox(label="Prompt (the opening both responses continue)", interactive=False, elem_id="fb-prompt", scale=4)
        new = gr.Button("New pair", elem_id="fb-new", scale=1)
    with gr.Row(equal_height=True):
        resp_a = gr.Textbox(label="Response A", lines=3, interactive=False, elem_id="fb-resp-a")
        resp_b = gr.Textbox(label="Response B", lines=3, interactive=False, elem_id="fb-resp-b")
    with gr.Row():
        btn_a = gr.Button("A is better [1]", variant="primary", elem_id="fb-a")
        btn_b = gr.Button("B is better [2]", variant="primary", elem_id="fb-b")
        btn_tie = gr.Button("Tie [3]", elem_id="fb-tie")
        btn_skip = gr.Button("Skip [4]", elem_id="fb-skip")
    counts = gr.Markdown(counts_md(store.counts(), 0), elem_id="fb-counts")
    with gr.Row():
        export = gr.Button("Export pairs (JSONL)", elem_id="fb-export")
        use = gr.Button("Use for DPO", variant="secondary", elem_id="fb-use")
    download = gr.File(label="Preference pairs (prompt / chosen / rejected)", interactive=False, elem_id="fb-file", height=80,
                       visible=False)
    note = gr.Markdown("", elem_id="fb-note")
    with gr.Accordion("Settings", open=False):
        resp_tokens = gr.Slider(4, 48, value=16, step=1, label="Response tokens", elem_id="fb-tokens")
        temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.1, label="Sampling temperature", elem_id="fb-temp")
        gr.Markdown(f"Labels are stored in `{store.path}` (one JSON line per label, append-only).")

    def next_pair(n_tokens, temp):
        try:
            bundle = ctx.registry.get(DEFAULT_MODEL)
        except ModelLoadError as exc:
            raise gr.Error(str(exc)) from exc
        opening = random.choice(builtin_prompts("train"))
        q, a, b = make_pair(bundle.model, bundle.tokenizer, opening, query_tokens=random.randint(3, 8),
                            response_tokens=int(n_tokens), temperature=float(temp))
        return (q, a, b), q, a, b

    pair_outputs = [pair, prompt, resp_a, resp_b]

    def label(which: str):
        def save(current, n, request: gr.Request):
            if not current:
                raise gr.Error("No pair on screen yet: press New pair.")
            q, a, b = current
            try:
                store.add(q, a, b, which, session=(getattr(request, "session_hash", "") or "")[:12])
            except ValueError as exc:
                raise gr.Error(str(exc)) from exc
            n = int(n) + 1
            # clear the pair, so a double click cannot label it twice
            return None, n, counts_md(store.counts(), n), gr.update(value="…"), gr.update(value="…")
        return save

    for btn, which in ((btn_a, "A"), (btn_b, "B"), (btn_tie, "tie"), (btn_skip, "skip")):
        btn.click(label(which), [pair, session_n], [pair, session_n, counts, resp_a, resp_b],
                  api_visibility="private", concurrency_limit=None).success(
            next_pair, [resp_tokens, temperature], pair_outputs, api_visibility="private")
    new.click(next_pair, [resp_tokens, temperature], pair_outputs, api_visibility="private")

    def on_export():
        c = store.counts()
        if not c["pairs"]:
            raise gr.Error("No A/B labels yet (ties and skips carry no preference).")
        path = Path(ctx.runs_dir) / "feedback" / f"pairs-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
        store.export_jsonl(path)
        return gr.update(value=str(path), visible=True), f"Exported {c['pairs']} pairs to `{path}`."

    export.click(on_export, None, [download, note], api_visibility="private")

    dpo_source = ctx.dpo_source

    def on_use():
        c = store.counts()
        if not c["pairs"]:
            raise gr.Error("No A/B labels yet: label a few pairs first.")
        msg = (f"The DPO panel now trains on your **{c['pairs']} labelled pairs**: open **Training → DPO** and "
               f"press Start (a few dozen pairs already move the model a little; the shipped set has 487).")
        return (msg, gr.update(value=SOURCES[1])) if dpo_source is not None else (msg,)

    use.click(on_use, None, [note, dpo_source] if dpo_source is not None else [note], api_visibility="private")
    demo.load(None, None, None, js=KEYS_JS)
    demo.load(lambda: counts_md(store.counts(), 0), None, counts, api_visibility="private")
