"""The best-of-N distillation panel of the Training tab: preset, reward (the reward builder,
``ui/reward_builder.py``: a function, a learned reward model ``rm:`` or a weighted sum, the same choices
as PPO's), every knob (built from ``BoNConfig``'s metadata), Start/Stop, live curves (held-out reward and KL against the kept samples' reward and best-of-N's bound,
the fine-tuning loss), the kept samples and before/after. Its texts only: the panel is
``training_widgets.policy_panel``'s, like GRPO's.

Start puts the run in the app's training queue (``runs.queue``), a ``gr.Timer`` shows the session's
job as it goes; Stop leaves the queue or stops the run after its current step (the policy is saved)."""

from __future__ import annotations

import gradio as gr

from rlhf_demo.bon.config import DISTILL
from rlhf_demo.ui.context import AppContext
from rlhf_demo.ui.training_widgets import PolicyTexts, policy_panel

INTRO = """### Best-of-N distillation: fine-tune on the answers best-of-N would pick
First the **reference** answers every training opening **N times**; the reward (VADER sentiment by default, or a
reward model `rm:`) scores each answer and only the **best** of each opening is kept. Then the policy (a LoRA
adapter) is fine-tuned on those winners with the plain next-token loss (TRL's SFTTrainer): it learns to answer
the way best-of-N picks, without drawing N answers each time. No reward in the training loop, no value model.
Best-of-N's own KL to the reference is at most log N − (N−1)/N; the held-out prompts (◆) are scored with the
same reward and KL as PPO, DPO and GRPO, so every algorithm lands on the same reward–KL plot (Runs tab)."""
TEXTS = PolicyTexts(
    preset_info="Quick CPU demo: LoRA, a 5-minute budget (sampling included) on a laptop CPU.",
    start_label="Start best-of-N distillation",
    intro=INTRO,
    reward_help="What picks the best of the N answers (and what the held-out evaluation reports); the same choices as PPO's.",
    open_groups=("Sampling", "Optimisation", "Model and LoRA", "Evaluation"),
    status="Press **Start best-of-N distillation**. One training runs at a time on this machine; others wait in line.",
    empty_plot="Start a run to see the kept samples' reward, the loss and held-out reward/KL here.",
    plot_label="Best-of-N distillation curves",
    explain=DISTILL,
    samples_label="The kept samples (the best of N per query) or the latest held-out samples",
)


def build(ctx: AppContext, demo: gr.Blocks, alg) -> None:
    """The panel of ``alg`` (best-of-N distillation's ``Algorithm``: its jobs are the ones this panel shows)."""
    policy_panel(ctx, alg, TEXTS)
