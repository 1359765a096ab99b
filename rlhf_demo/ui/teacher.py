"""The Teacher tab (shown to the teacher only, every action checked on the server too): the class code
students join with, the training queue (reorder, remove, stop the running run), pins and deletes of
runs, the class's labels (counts per labeller, agreement, remove a labeller, clear) and one download of
the class's runs and labels, and the question the Feedback tab asks. Lays out and wires only: the queue is ``training.queue``, owners and pins
``classroom.ownership``, agreement ``classroom.agreement``; pins, the code and removing a labeller are
``ui.class_actions`` (the same as ``/teacher_pin``, ``/teacher_class_code``, ``/teacher_remove_labeller``);
the question is stored with the class's settings (``classroom.roster``), and so is the class challenge
(``classroom.challenge``: a reward spec and a KL budget; ``class_actions.set_challenge``, the same as
``/teacher_challenge``), whose ranking (``challenge.class_ranking``) this tab and the Runs tab show.
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import gradio as gr
import pandas as pd

from rlhf_demo.classroom.agreement import agreement
from rlhf_demo.classroom.challenge import class_ranking
from rlhf_demo.classroom.ownership import OwnershipError
from rlhf_demo.classroom.permissions import ONLY_TEACHER
from rlhf_demo.classroom.quota import downloads_dir
from rlhf_demo.classroom.roster import class_challenge
from rlhf_demo.models.loading import ModelLoadError
from rlhf_demo.runs.folder import list_runs
from rlhf_demo.training.queue import QUEUE, QueueError
from rlhf_demo.ui import class_actions
from rlhf_demo.ui.context import AppContext
from rlhf_demo.ui.training_dpo import feedback_store

INTRO = """### Teacher
The queue of trainings (one trains at a time), the class's runs (pin one and every student sees it in
Runs, Playground and KL), and the class's labels. Students see only their own runs, pinned runs and the
shipped examples."""


def agreement_md(records: list[dict]) -> str:
    a = agreement(records)
    if not a["pairs"]:
        return "No pair has been labelled by two people yet (the Feedback tab shows pairs others labelled to the next students)."
    kappa = f", Fleiss' κ = {a['kappa']:.2f}" if a["kappa"] is not None else ""
    return (
        f"**Agreement:** {a['pairs']} pairs labelled by two or more people; labellers agree on "
        f"**{a['observed']:.0%}** of them (chance {a['chance']:.0%}{kappa})."
    )


def build(ctx: AppContext, demo: gr.Blocks) -> None:
    store = feedback_store(ctx)
    gr.Markdown(INTRO)
    refresh = gr.Button("Refresh", size="sm", elem_id="teacher-refresh")
    code_md = gr.Markdown("", elem_id="teacher-code")
    gr.Markdown("#### Training queue")
    queue_table = gr.Dataframe(headers=["#", "who", "algorithm", "state", "run"], interactive=False, elem_id="teacher-queue")
    with gr.Row():
        job = gr.Dropdown([], label="Job", elem_id="teacher-job", scale=3)
        earlier = gr.Button("Earlier", size="sm", elem_id="teacher-earlier")
        later = gr.Button("Later", size="sm", elem_id="teacher-later")
        remove = gr.Button("Remove / stop", variant="stop", size="sm", elem_id="teacher-remove")
    gr.Markdown("#### Runs")
    runs_table = gr.Dataframe(headers=["run", "owner", "pinned"], interactive=False, elem_id="teacher-runs")
    with gr.Row():
        run = gr.Dropdown([], label="Run", elem_id="teacher-run", scale=3)
        pin = gr.Button("Pin for the class", size="sm", elem_id="teacher-pin")
        unpin = gr.Button("Unpin", size="sm", elem_id="teacher-unpin")
        sure = gr.Checkbox(False, label="I am sure", elem_id="teacher-sure")
        delete = gr.Button("Delete run", variant="stop", size="sm", elem_id="teacher-delete")
    gr.Markdown("#### Class challenge")
    with gr.Row():
        ch_reward = gr.Textbox(
            "",
            label="The class's reward (a builder spec)",
            placeholder="0.7*vader-positive + 0.3*on-topic - 0.5*repetition",
            info="runs trained on it are ranked; blank + Set ends the challenge",
            max_lines=1,
            elem_id="teacher-challenge-reward",
            scale=4,
        )
        ch_budget = gr.Number(
            3.0, label="KL budget (nats, held-out)", minimum=0.01, maximum=100, elem_id="teacher-challenge-budget", scale=1
        )
        ch_set = gr.Button("Set the challenge", size="sm", elem_id="teacher-challenge-set", scale=1)
    ch_md = gr.Markdown("", elem_id="teacher-challenge-md")
    ch_table = gr.Dataframe(interactive=False, elem_id="teacher-challenge", max_height=300, visible=False)
    gr.Markdown("#### The class's labels")
    with gr.Row():
        question = gr.Textbox(
            class_actions.question(ctx),
            label="The question the Feedback tab asks",
            info="what “better” means for the class's labels; blank: the default",
            max_lines=1,
            elem_id="teacher-question",
            scale=4,
        )
        save_question = gr.Button("Ask this", size="sm", elem_id="teacher-question-save", scale=1)
    labels_md = gr.Markdown("", elem_id="teacher-labels")
    labellers = gr.Dataframe(headers=["who", "labels"], interactive=False, elem_id="teacher-labellers", max_height=260)
    with gr.Row():
        labeller = gr.Dropdown([], label="Labeller", elem_id="teacher-labeller", scale=3)
        drop_sure = gr.Checkbox(False, label="I am sure", elem_id="teacher-drop-sure")
        drop = gr.Button("Remove this labeller and their labels", variant="stop", size="sm", elem_id="teacher-drop")
    with gr.Row():
        clear_sure = gr.Checkbox(False, label="I am sure", elem_id="teacher-clear-sure")
        clear = gr.Button("Clear the class's labels (kept in a file beside them)", variant="stop", size="sm", elem_id="teacher-clear")
        bundle = gr.Button("Download the class's runs and labels (zip)", size="sm", elem_id="teacher-bundle")
    files = gr.File(label="Download", interactive=False, visible=False, height=80, elem_id="teacher-file")
    msg = gr.Markdown("", elem_id="teacher-msg")

    def need_teacher(request):
        if not ctx.is_teacher(request):
            raise gr.Error(ONLY_TEACHER.capitalize() + ".")

    def view(request: gr.Request):
        if not ctx.is_teacher(request):  # a student's page: nothing of the class is sent
            return (gr.skip(),) * len(view_outs)
        jobs = QUEUE.jobs()
        q = pd.DataFrame(
            [[i, j.nickname, j.algo.upper(), j.state, j.out.name] for i, j in enumerate(jobs, 1)],
            columns=["#", "who", "algorithm", "state", "run"],
        )
        job_choices = [(f"{i}. {j.nickname} ({j.algo.upper()}, {j.state})", j.id) for i, j in enumerate(jobs, 1)]
        record = ctx.record
        runs = [r for r in list_runs(ctx.runs_dir, include_example=False)]
        pins = set(record.pins())
        rt = pd.DataFrame(
            [[r.name, record.owner(r).get("nickname", "(command line)"), "📌" if r.name in pins else ""] for r in runs],
            columns=["run", "owner", "pinned"],
        )
        recs = store.records()
        names = {r["labeller"]: r.get("nickname") or r["labeller"][:6] for r in recs}
        per = pd.DataFrame([[names.get(k, k[:6]), n] for k, n in store.labellers().items()], columns=["who", "labels"])
        c = store.counts()
        text = f"**{c['total']}** labels from **{len(per)}** people — {c['pairs']} A/B preferences. " + agreement_md(recs)
        who_choices = [(f"{names.get(k, k[:6])} ({n} labels, id {k})", k) for k, n in store.labellers().items()]
        code = (
            f"### Class code: `{class_actions.code(ctx)}`\nStudents type it into the box at the top of the page "
            "to train, label and choose a name."
            if ctx.teacher_mode()
            else ""
        )
        ch_text, ranked, ch = class_ranking(ctx.runs_dir, ctx.record, ctx.visible_runs(request))
        return (
            ch_text,
            gr.update(value=ranked, visible=ch is not None),  # no empty table while no challenge is set
            q,
            gr.update(choices=job_choices, value=job_choices[0][1] if job_choices else None),
            rt,
            gr.update(choices=[r.name for r in runs], value=runs[0].name if runs else None),
            text,
            per,
            gr.update(choices=who_choices, value=None),
            code,
        )

    view_outs = [ch_md, ch_table, queue_table, job, runs_table, run, labels_md, labellers, labeller, code_md]

    def queue_action(action):
        def act(job_id, request: gr.Request):
            need_teacher(request)
            try:
                said = QUEUE.move(job_id, -1 if action == "earlier" else 1) if action != "remove" else QUEUE.remove(job_id)
            except QueueError as exc:
                raise gr.Error(str(exc)) from exc
            return (f"Job: {said}.", *view(request))

        return act

    for btn, action in ((earlier, "earlier"), (later, "later"), (remove, "remove")):
        btn.click(queue_action(action), job, [msg, *view_outs], api_visibility="private", concurrency_limit=None)

    def folder_of(name) -> Path:
        try:
            return class_actions.run_folder(ctx, name)
        except ValueError as exc:
            raise gr.Error(str(exc) + ".") from exc

    def pin_action(on: bool):
        def act(name, request: gr.Request):
            try:
                class_actions.pin(ctx, request, name, on)
            except ValueError as exc:
                raise gr.Error(str(exc) + ".") from exc
            return (f"`{name}` {'pinned: every student now sees it' if on else 'unpinned'}.", *view(request))

        return act

    def on_drop(who, really, request: gr.Request):
        need_teacher(request)
        if not really:
            raise gr.Error("Tick “I am sure” first: their labels leave the class's pool (kept in a file beside it).")
        try:
            out = class_actions.remove_labeller(ctx, request, who)
        except ValueError as exc:
            raise gr.Error(str(exc) + ".") from exc
        return (f"Removed the labeller and {out['removed']} labels from the pool; they cannot label again.", False, *view(request))

    def on_question(text, request: gr.Request):
        try:
            now = class_actions.set_question(ctx, request, text)
        except ValueError as exc:
            raise gr.Error(str(exc) + ".") from exc
        return f"The Feedback tab now asks: “{now}” (each new pair; labels keep the question they answered).", now

    def on_challenge(reward, kl_budget, request: gr.Request):
        try:
            now = class_actions.set_challenge(ctx, request, reward, kl_budget)
        except (ValueError, ModelLoadError) as exc:
            raise gr.Error(str(exc).rstrip(".") + ".") from exc
        said = (
            f"The class challenge is set: `{now['reward']}` within {now['kl_budget']:g} nats."
            if now["reward"]
            else "The class challenge has ended."
        )
        return (said, *view(request))

    ch_set.click(on_challenge, [ch_reward, ch_budget], [msg, *view_outs], api_visibility="private")
    ch_reward.submit(on_challenge, [ch_reward, ch_budget], [msg, *view_outs], api_visibility="private")

    def current_challenge():
        ch = class_challenge(ctx.runs_dir)
        return (ch.reward, ch.kl_budget) if ch else (gr.skip(), gr.skip())

    demo.load(current_challenge, None, [ch_reward, ch_budget], api_visibility="private", show_progress="hidden")

    def asked():
        return class_actions.question(ctx)

    demo.load(asked, None, question, api_visibility="private", show_progress="hidden")
    save_question.click(on_question, question, [msg, question], api_visibility="private")
    question.submit(on_question, question, [msg, question], api_visibility="private")

    drop.click(on_drop, [labeller, drop_sure], [msg, drop_sure, *view_outs], api_visibility="private")

    pin.click(pin_action(True), run, [msg, *view_outs], api_visibility="private")
    unpin.click(pin_action(False), run, [msg, *view_outs], api_visibility="private")

    def on_delete(name, really, request: gr.Request):
        need_teacher(request)
        if not really:
            raise gr.Error("Tick “I am sure” first: a deleted run cannot be brought back.")
        folder = folder_of(name)
        if any(j.out.name == folder.name for j in QUEUE.jobs()):
            raise gr.Error(f"{name!r} is training or waiting: remove it from the queue first.")
        try:
            ctx.record.delete(folder)
        except OwnershipError as exc:
            raise gr.Error(str(exc)) from exc
        return (f"Deleted `{name}`.", False, *view(request))

    delete.click(on_delete, [run, sure], [msg, sure, *view_outs], api_visibility="private")

    def on_clear(really, request: gr.Request):
        need_teacher(request)
        if not really:
            raise gr.Error("Tick “I am sure” first.")
        kept = store.clear()
        return (
            f"The class's label pool is empty; the old labels are kept in `{kept.name}`." if kept else "There were no labels.",
            False,
            *view(request),
        )

    clear.click(on_clear, clear_sure, [msg, clear_sure, *view_outs], api_visibility="private")

    def on_bundle(request: gr.Request):
        need_teacher(request)
        out = downloads_dir() / f"class-{time.strftime('%Y%m%d-%H%M%S')}.zip"
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for r in list_runs(ctx.runs_dir, include_example=False):
                for f in sorted(r.rglob("*")):
                    if f.is_file() and not f.is_symlink():
                        z.write(f, f"runs/{r.name}/{f.relative_to(r)}")
            if store.path.exists():
                z.write(store.path, "labels.jsonl")
        return gr.update(value=str(out), visible=True), f"Zipped {len(list_runs(ctx.runs_dir, include_example=False))} runs and the labels."

    bundle.click(on_bundle, None, [files, msg], api_visibility="private")
    refresh.click(view, None, view_outs, api_visibility="private")
    if ctx.who is not None:
        ctx.who.change(view, None, view_outs, api_visibility="private", show_progress="hidden")
