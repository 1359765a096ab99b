"""The Training tab: an algorithm selector over two panels, PPO (``training_ppo.py``) and DPO
(``training_dpo.py``). Lays out and wires only."""
from __future__ import annotations

import gradio as gr

from rlhf_demo.ui import training_dpo, training_ppo

PANELS = [("PPO", training_ppo), ("DPO", training_dpo)]


def build(ctx, demo: gr.Blocks) -> None:
    available = PANELS
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
