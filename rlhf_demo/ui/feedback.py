"""The Feedback tab: a prompt and two responses from the base model; the learner picks A, B, tie or skip
(buttons or the keys 1 / 2 / 3 / 4). A pair is on screen as soon as the tab opens. Each label carries
its labeller's user id and is appended to a JSONL file and fsynced before the next pair is drawn, so
closing the tab loses nothing. "You: n · class: m"; on a shared server half of the pairs shown are
pairs someone else labelled (``FeedbackStore.open_pairs``), which is how the Teacher tab measures
agreement. Drawing and labelling are ``ui.labelling`` (the same as ``/feedback_pair`` and
``/feedback_label``): in classroom mode only after joining, rate-limited and capped. A download of your
pairs in TRL's prompt/chosen/rejected format, and "Use for DPO" (points the DPO panel at your labels). Lays out and wires only: the store is ``rlhf_demo.data.feedback``.
"""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr

from rlhf_demo.models.loading import ModelLoadError
from rlhf_demo.ui import class_actions, labelling
from rlhf_demo.ui.context import AppContext
from rlhf_demo.ui.training_dpo import SOURCES, WHOSE, feedback_store

INTRO = """### Human feedback
Two responses are sampled from the base model for the same opening. Answer the question below — **A**, **B**,
**tie** or **skip** (keys **1 2 3 4** when no text box is focused). Every label is saved to disk the moment
you click. Your A/B labels are preference pairs: train on them with **DPO** (Training tab → DPO →
"Feedback labels": yours, or the whole class's by majority vote)."""


def question_md(question: str) -> str:
    """The question every label answers (the teacher sets it for the class: Teacher tab)."""
    return f"#### {question}"


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


def counts_md(mine: dict, everyone: dict) -> str:
    return (
        f"**You: {mine['total']}** labels ({mine['pairs']} A/B pairs for DPO) · **class: {everyone['total']}** "
        f"(A {everyone['A']} · B {everyone['B']} · tie {everyone['tie']} · skip {everyone['skip']})"
    )


def build(ctx: AppContext, demo: gr.Blocks) -> None:
    store = feedback_store(ctx)
    pair = gr.State(None)  # the id of the pair on screen (its text is kept server-side: ``ui.labelling``)
    gr.Markdown(INTRO)
    with gr.Row():
        prompt = gr.Textbox(label="Prompt (the opening both responses continue)", interactive=False, elem_id="fb-prompt", scale=4)
        new = gr.Button("New pair", elem_id="fb-new", scale=1)
    question = gr.Markdown(question_md(class_actions.question(ctx)), elem_id="fb-question")
    with gr.Row(equal_height=True):
        resp_a = gr.Textbox(label="Response A", lines=3, interactive=False, elem_id="fb-resp-a")
        resp_b = gr.Textbox(label="Response B", lines=3, interactive=False, elem_id="fb-resp-b")
    with gr.Row():
        btn_a = gr.Button("A is better [1]", variant="primary", elem_id="fb-a")
        btn_b = gr.Button("B is better [2]", variant="primary", elem_id="fb-b")
        btn_tie = gr.Button("Tie [3]", elem_id="fb-tie")
        btn_skip = gr.Button("Skip [4]", elem_id="fb-skip")
    counts = gr.Markdown("", elem_id="fb-counts")
    shared_note = gr.Markdown("", elem_id="fb-shared")
    with gr.Row():
        export = gr.Button("Export pairs (JSONL)", elem_id="fb-export")
        use = gr.Button("Use for DPO", variant="secondary", elem_id="fb-use")
    download = gr.File(
        label="Preference pairs (prompt / chosen / rejected)", interactive=False, elem_id="fb-file", height=80, visible=False
    )
    note = gr.Markdown("", elem_id="fb-note")
    with gr.Accordion("Settings", open=False):
        resp_tokens = gr.Slider(4, 48, value=16, step=1, label="Response tokens", elem_id="fb-tokens")
        temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.1, label="Sampling temperature", elem_id="fb-temp")
        gr.Markdown("Labels are stored on the server, one JSON line per label, append-only.")

    def my_counts(request: gr.Request) -> str:
        c = labelling.counts(ctx, request)
        return counts_md(c["you"], c["class"])

    def next_pair(n_tokens, temp, request: gr.Request):
        try:
            p = labelling.draw_pair(ctx, request, n_tokens, temp)
        except (ValueError, ModelLoadError) as exc:
            raise gr.Error(str(exc)) from exc
        note = "Another student labelled this pair too: the Teacher tab compares the labels." if p["shared"] else ""
        return p["pair_id"], p["prompt"], p["a"], p["b"], note, question_md(p["question"])

    pair_outputs = [pair, prompt, resp_a, resp_b, shared_note, question]

    def label(which: str):
        def save(current, request: gr.Request):
            if not current:
                raise gr.Error("No pair on screen yet: press New pair.")
            try:
                c = labelling.save_label(ctx, request, current, which)
            except ValueError as exc:
                raise gr.Error(str(exc)) from exc
            # clear the pair, so a double click cannot label it twice
            return None, counts_md(c["you"], c["class"]), gr.update(value="…"), gr.update(value="…")

        return save

    for btn, which in ((btn_a, "a"), (btn_b, "b"), (btn_tie, "tie"), (btn_skip, "skip")):
        btn.click(label(which), [pair], [pair, counts, resp_a, resp_b], api_visibility="private", concurrency_limit=None).success(
            next_pair, [resp_tokens, temperature], pair_outputs, api_visibility="private", concurrency_limit=None
        )
    new.click(next_pair, [resp_tokens, temperature], pair_outputs, api_visibility="private", concurrency_limit=None)

    def first_pair(current, n_tokens, temp, request: gr.Request):
        """The tab opened: draw a pair unless one is on screen already."""
        if current:
            return (gr.skip(),) * len(pair_outputs)
        return next_pair(n_tokens, temp, request)

    if getattr(ctx, "tab", None) is not None:
        ctx.tab.select(first_pair, [pair, resp_tokens, temperature], pair_outputs, api_visibility="private")

    def on_export(request: gr.Request):
        uid = ctx.user(request).id
        c = store.counts(uid)
        if not c["pairs"]:
            raise gr.Error("You have no A/B labels yet (ties and skips carry no preference).")
        path = Path(ctx.runs_dir) / "feedback" / "exports" / f"pairs-{uid[:6]}-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
        store.export_jsonl(path, labeller=uid)
        return gr.update(value=str(path), visible=True), f"Exported your {c['pairs']} pairs."

    export.click(on_export, None, [download, note], api_visibility="private")

    dpo_source = ctx.dpo_source

    dpo_whose = ctx.dpo_whose

    def on_use(request: gr.Request):
        c = store.counts(ctx.user(request).id)
        if not c["pairs"]:
            raise gr.Error("You have no A/B labels yet: label a few pairs first.")
        msg = (
            f"The DPO panel now trains on your **{c['pairs']} labelled pairs**: open **Training → DPO** and "
            f"press Start (a few dozen pairs already move the model a little; the shipped set has 487). "
            f"Choose “{WHOSE[1]}” there to train on everyone's."
        )
        return (msg, gr.update(value=SOURCES[1]), gr.update(value=WHOSE[0], visible=True)) if dpo_source is not None else (msg,)

    use.click(on_use, None, [note, dpo_source, dpo_whose] if dpo_source is not None else [note], api_visibility="private")
    demo.load(None, None, None, js=KEYS_JS)

    def asked():  # the teacher may have changed it since the app was built
        return question_md(class_actions.question(ctx))

    demo.load(asked, None, question, api_visibility="private", show_progress="hidden")
    if ctx.who is not None:
        ctx.who.change(my_counts, None, counts, api_visibility="private", show_progress="hidden")
