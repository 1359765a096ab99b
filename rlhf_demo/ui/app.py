"""Build the RLHF Lab Blocks: a header, then one tab per module. Lays out and wires only."""

from __future__ import annotations

import os

import gradio as gr

from rlhf_demo.classroom.address import keep_real_peer
from rlhf_demo.classroom.class_limits import ClassLimits
from rlhf_demo.classroom.quota import cache_schedule
from rlhf_demo.threads import set_torch_threads
from rlhf_demo.ui import (
    api_classroom,
    api_inspect,
    api_training,
    event_limits,
    feedback,
    identity,
    kl_tab,
    playground,
    runs_tab,
    teacher,
    theory,
    training,
)
from rlhf_demo.ui.context import AppContext

TABS = [("Playground", playground), ("KL", kl_tab), ("Training", training), ("Feedback", feedback), ("Runs", runs_tab), ("Theory", theory)]

HEADER = """# RLHF Lab
Watch a real language model (SmolLM2-135M-Instruct) being fine-tuned from feedback: decoding,
KL to the reference, PPO and DPO, live on your CPU."""


def build_demo(ctx: AppContext | None = None) -> gr.Blocks:
    ctx = ctx or AppContext()
    with gr.Blocks(title="RLHF Lab", delete_cache=cache_schedule()) as demo:  # uploads and returned files cleaned by age
        gr.Markdown(HEADER)
        identity.build(ctx, demo)  # who this page is: sets ctx.who before the tabs use it
        with gr.Tabs(elem_id="tabs") as tabs:
            for label, mod in TABS:
                with gr.Tab(label, id=label.lower()) as ctx.tab:
                    mod.build(ctx, demo)
            with gr.Tab("Teacher", id="teacher", visible=False) as teacher_tab:
                teacher.build(ctx, demo)
        identity.refresh_models(ctx, tabs)  # model lists follow the user and new or pinned runs, no refresh button
        api_training.build(ctx, demo)  # /train_start, /train_status, /train_stop (docs/api-training.md)
        api_inspect.build(ctx, demo)  # /inspect: one update of a run, token by token (docs/api.md)
        api_classroom.build(ctx, demo)  # /join, /feedback_*, /teacher_* (docs/api.md)
        event_limits.free_on_unload(demo, ctx)  # a page that leaves frees its session (ui/event_limits.py)

        def on_who(request: gr.Request):
            return gr.update(visible=ctx.classroom() and ctx.is_teacher(request))

        ctx.who.change(on_who, None, teacher_tab, api_visibility="private", show_progress="hidden")

        def on_tab(evt: gr.SelectData):
            return gr.Timer(active=evt.value == "Training")

        if ctx.live_timer is not None:  # the live training view polls only while its tab is open
            tabs.select(on_tab, None, ctx.live_timer, api_visibility="private", show_progress="hidden")
    demo.queue(max_size=ctx.class_limits.queue_size, default_concurrency_limit=2)  # trainings wait in training.queue, not here
    event_limits.limit_pending(demo, ctx)  # pending events per session and per address (ui/event_limits.py)
    keep_real_peer()  # client addresses: classroom/address.py decides, not uvicorn's default
    return demo


def launch(demo: gr.Blocks | None = None, **kwargs):
    set_torch_threads()  # once for the whole server, from the cores this process may use (rlhf_demo/threads.py)
    demo = demo or build_demo()
    kwargs.setdefault("server_name", os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    kwargs.setdefault("server_port", int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    kwargs.setdefault("max_file_size", "5mb")
    kwargs.setdefault("state_session_capacity", ClassLimits.from_env().max_sessions)  # Gradio's per-session state
    kwargs.setdefault("theme", gr.themes.Soft())
    return demo.launch(**kwargs)
