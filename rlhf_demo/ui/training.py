"""The Training tab: an algorithm selector over two panels, PPO (``training_ppo.py``) and DPO
(``training_dpo.py``). Lays out and wires only."""

from __future__ import annotations

import gradio as gr

from rlhf_demo.ui import training_dpo, training_grpo, training_live, training_ppo, training_reward

PANELS = [("PPO", training_ppo), ("DPO", training_dpo), ("Reward model", training_reward), ("GRPO", training_grpo)]


def build(ctx, demo: gr.Blocks) -> None:
    ctx.live_timer = training_live.build(ctx, demo)  # whatever trains now, for every page
    available = PANELS
    algo = gr.Radio(
        [label for label, _ in available],
        value=available[0][0],
        label="Algorithm",
        info="PPO: sample, score with a reward model, push the policy (KL-penalised). "
        "DPO: learn straight from preference pairs, no sampling during training. "
        "GRPO: sample G answers per prompt, score them, push each above or below its group's mean "
        "(no value model).",
        elem_id="training-algo",
    )
    groups = []
    for i, (label, mod) in enumerate(available):
        with gr.Group(visible=(i == 0), elem_id=f"training-panel-{label.lower()}") as g:
            mod.build(ctx, demo)
        groups.append(g)
    algo.change(lambda a: [gr.update(visible=(a == label)) for label, _ in available], algo, groups, api_visibility="private")
