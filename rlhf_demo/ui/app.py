"""Build the RLHF Lab Blocks: a header, then one tab per module. Lays out and wires only."""
from __future__ import annotations

import os

import gradio as gr

from rlhf_demo.threads import set_torch_threads
from rlhf_demo.ui import feedback, kl_tab, playground, runs_tab, theory, training
from rlhf_demo.ui.context import AppContext

TABS = [("Playground", playground), ("KL", kl_tab), ("Training", training), ("Feedback", feedback),
        ("Runs", runs_tab), ("Theory", theory)]

HEADER = """# RLHF Lab
Watch a real language model (SmolLM2-135M-Instruct) being fine-tuned from feedback: decoding,
KL to the reference, PPO and DPO, live on your CPU."""


def build_demo(ctx: AppContext | None = None) -> gr.Blocks:
    ctx = ctx or AppContext()
    with gr.Blocks(title="RLHF Lab") as demo:
        gr.Markdown(HEADER)
        with gr.Tabs():
            for label, mod in TABS:
                with gr.Tab(label, id=label.lower()):
                    mod.build(ctx, demo)
    demo.queue(max_size=128, default_concurrency_limit=2)   # trainings wait in runs.queue, not here
    return demo


def launch(demo: gr.Blocks | None = None, **kwargs):
    set_torch_threads()  # once for the whole server, from the cores this process may use (rlhf_demo/threads.py)
    demo = demo or build_demo()
    kwargs.setdefault("server_name", os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    kwargs.setdefault("server_port", int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    kwargs.setdefault("max_file_size", "5mb")
    kwargs.setdefault("theme", gr.themes.Soft())
    return demo.launch(**kwargs)
