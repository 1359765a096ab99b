"""The GRPO panel of the Training tab: preset, reward (the reward builder, ``ui/reward_builder.py``: a
function, a learned reward model ``rm:`` from the run folders or a weighted sum, the same choices as PPO's), every knob (built from ``GRPOConfig``'s metadata), Start/Stop,
live curves (batch reward, TRL's batch KL, held-out reward and KL), the step's completions and
before/after. Its texts only: the panel is ``training_widgets.policy_panel``'s, like best-of-N distillation's.

Start puts the run in the app's training queue (``runs.queue``), a ``gr.Timer`` shows the session's
job as it goes; Stop leaves the queue or stops the run after its current step (the policy is saved)."""

from __future__ import annotations

import gradio as gr

from rlhf_demo.grpo.config import GROUP_BASELINE
from rlhf_demo.ui.context import AppContext
from rlhf_demo.ui.training_widgets import PolicyTexts, policy_panel

INTRO = """### GRPO: learn from a reward, with the group as the baseline
Each **step** takes a few movie-review openings and lets the policy continue each one **G times**; the reward
(VADER sentiment by default, or a reward model `rm:`) scores every text, and a completion's **advantage** is its
reward minus the mean of its own group (divided by the group's spread). No value model: better-than-its-siblings
completions are pushed up, worse ones down, and a **β·KL** term in the loss keeps the policy near the reference
(the same model with its LoRA adapter off). Held-out prompts (◆) are scored with the same reward and KL as PPO
and DPO, so the three algorithms land on the same reward–KL plot (Runs tab)."""
TEXTS = PolicyTexts(
    preset_info="Quick CPU demo: LoRA, groups of 8, a 5-minute budget (usually stopped by the 6-nat KL stop first) on a laptop CPU.",
    start_label="Start GRPO",
    intro=INTRO,
    reward_help="What each completion is scored with, within its group; the same choices as PPO's.",
    open_groups=("Rollouts", "KL penalty", "Optimisation", "Model and LoRA", "Evaluation"),
    status="Press **Start GRPO**. One training runs at a time on this machine; others wait in line.",
    empty_plot="Start a GRPO run to see batch reward, KL and held-out reward/KL here.",
    plot_label="GRPO curves",
    explain=GROUP_BASELINE,
    samples_label="The step's completions (G per query) or the latest held-out samples",
)


def build(ctx: AppContext, demo: gr.Blocks, alg) -> None:
    """The panel of ``alg`` (GRPO's ``Algorithm``: its jobs are the ones this panel shows)."""
    policy_panel(ctx, alg, TEXTS)
