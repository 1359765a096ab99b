"""The Training tab: an algorithm selector over one panel per registered algorithm that declares one
(``Algorithm.panel``: ``training_ppo.py``, ``training_dpo.py``, ``training_reward.py``,
``training_grpo.py``; each opens with preset → Start → Stop, in the first viewport), then whatever trains
now on this machine (``training_live.py``). After a reload the tab opens on the panel of the user's
last run, which shows that run again. Lays out and wires only."""

from __future__ import annotations

import importlib

import gradio as gr

from rlhf_demo.algorithms import ALGORITHMS, Algorithm
from rlhf_demo.ui import training_live
from rlhf_demo.ui.training_run import latest_label


def sub_tabs() -> list[Algorithm]:
    """The algorithms the tab offers, in the registry's order: those with a panel."""
    return [alg for alg in ALGORITHMS.values() if alg.panel]


def build(ctx, demo: gr.Blocks) -> None:
    available = sub_tabs()
    algo = gr.Radio(
        [alg.label for alg in available],
        value=available[0].label,
        label="Algorithm",
        info=" ".join(f"{alg.label}: {alg.blurb}" for alg in available if alg.blurb),
        elem_id="training-algo",
    )
    groups = []
    for i, alg in enumerate(available):
        with gr.Group(visible=(i == 0), elem_id=f"training-panel-{alg.label.lower()}") as g:
            importlib.import_module(alg.panel).build(ctx, demo, alg)
        groups.append(g)
    ctx.live_timer = training_live.build(ctx, demo)  # whatever trains now, for every page
    labels = [alg.label for alg in available]
    algo.change(lambda a: [gr.update(visible=(a == label)) for label in labels], algo, groups, api_visibility="private")

    def on_who(request: gr.Request):
        """After a reload, the panel of this user's last run (its timer redraws it: ``training_run.restore``)."""
        last = latest_label(request)
        return gr.update(value=last) if last in labels else gr.skip()

    if ctx.who is not None:
        ctx.who.change(on_who, None, algo, api_visibility="private", show_progress="hidden", queue=False)
