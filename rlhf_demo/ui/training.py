"""The Training tab: an algorithm selector over two panels, PPO (``training_ppo.py``) and DPO
(``training_dpo.py``). Lays out and wires only."""
from __future__ import annotations

import importlib

import gradio as gr

PANELS = [("PPO", "rlhf_demo.ui.training_ppo"), ("DPO", "rlhf_demo.ui.training_dpo")]


def build(ctx, demo: gr.Blocks) -> None:
    available = []
    for label, modname in PANELS:
        try:
            available.append((label, importlib.import_module(modname)))
        except ModuleNotFoundError as exc:
            if exc.name != modname:
                raise
    if not available:
        gr.Markdown("No training algorithm is available in this build.")
        return
    algo = gr.Radio([label for label, _ in available], value=available[0][0], label="Algorithm",
                    info="PPO: sample, score with a reward model, push the policy (KL-penalised). "
                         "DPO: learn straight from preference pairs, no sampling during training.",
                    elem_id="training-algo")
    groups = []
    for i, (label, mod) in enumerate(available):
        with gr.Group(visible=(i == 0), elem_id=f"training-panel-{label.lower()}") as g:
            mod.build(ctx, demo)
        groups.append(g)
    algo.change(lambda a: [gr.update(visible=(a == label)) for label, _ in available], algo, groups,
                api_visibility="private")
