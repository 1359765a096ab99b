"""The named classroom API (``docs/api.md``): join the class, label pairs, the teacher's actions.

    /join                     class_code, nickname, token ('' = new)  → {"user", "nickname", "token", "proof"}
    /feedback_pair            response_tokens, temperature             → {"pair_id", "prompt", "a", "b"}
    /feedback_label           pair_id, choice (a / b / tie / skip)     → {"you", "class"}
    /teacher_login            key, token ('' = this session's user)    → {"user", "proof"}
    /teacher_logout                                                    → {"user", "teacher"}
    /teacher_pin              run, pinned                              → {"run", "pinned"}
    /teacher_remove_labeller  labeller (id or nickname)                → {"labeller", "removed"}
    /teacher_class_code                                                → the code
    /teacher_challenge        reward (a builder spec; '' ends it), kl_budget (nats)
                                                                       → {"reward", "kl_budget", "base_reward"}

Each returns one JSON object as a string (the code: a string). A ``gradio_client.Client`` keeps one
Gradio session, so once it has joined, its later calls act as that identity; passing the token to
``/join`` again from another client resumes it. Every endpoint calls the same function as the page
(``ui.class_actions``, ``ui.labelling``), so the checks are the page's: nothing relies on being private.
"""

from __future__ import annotations

import functools
import json

import gradio as gr

from rlhf_demo.models.loading import ModelLoadError
from rlhf_demo.ui import class_actions, labelling
from rlhf_demo.ui.context import AppContext


def _one_line(fn):
    """Refusals (ValueError, a model that will not load) as ``gr.Error`` with their one line."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValueError, ModelLoadError) as exc:
            raise gr.Error(str(exc)) from exc

    return wrapped


def build(ctx: AppContext, demo: gr.Blocks) -> None:
    """Register the endpoints; call it inside ``demo``'s ``with gr.Blocks()`` (``app.build_demo``)."""

    def join(class_code: str = "", nickname: str = "", token: str = "", request: gr.Request = None) -> str:
        """Join the class with its code (classroom mode) as the identity ``token`` ('' = a new one) and
        the ``nickname`` the class sees. Returns a JSON object: user, nickname, token (keep it to resume), proof."""
        return json.dumps(class_actions.join(ctx, request, class_code, nickname, token))

    def feedback_pair(response_tokens: int = 16, temperature: float = 1.0, request: gr.Request = None) -> str:
        """A pair to label: a JSON object with pair_id, prompt, a, b (the two responses)."""
        pair = labelling.draw_pair(ctx, request, _int(response_tokens, 4, 48), _float(temperature, 0.1, 2.0))
        return json.dumps({k: pair[k] for k in ("pair_id", "prompt", "a", "b")}, ensure_ascii=False)

    def feedback_label(pair_id: str, choice: str, request: gr.Request = None) -> str:
        """Label the pair you were handed: choice is a, b, tie or skip. Returns a JSON object with your
        counts (you) and the class's (class)."""
        return json.dumps(labelling.save_label(ctx, request, pair_id, choice))

    def teacher_login(key: str, token: str = "", request: gr.Request = None) -> str:
        """Unlock teacher mode for this client with the teacher key (token: the identity from /join, or '')."""
        return json.dumps(class_actions.teacher_login(ctx, request, key, token))

    def teacher_logout(request: gr.Request = None) -> str:
        """Leave teacher mode."""
        return json.dumps(class_actions.teacher_logout(ctx, request))

    def teacher_pin(run: str, pinned: bool = True, request: gr.Request = None) -> str:
        """Pin a run for the class (pinned=true) or unpin it (teacher only)."""
        return json.dumps(class_actions.pin(ctx, request, run, pinned is True))

    def teacher_remove_labeller(labeller: str, request: gr.Request = None) -> str:
        """Take a labeller (id or nickname) and their labels out of the class's pool (teacher only)."""
        return json.dumps(class_actions.remove_labeller(ctx, request, labeller))

    def teacher_class_code(request: gr.Request = None) -> str:
        """The class code students join with (teacher only)."""
        return class_actions.teacher_class_code(ctx, request)

    def teacher_challenge(reward: str = "", kl_budget: float = 3.0, request: gr.Request = None) -> str:
        """Set the class challenge (teacher only): the class's reward as a builder spec and a held-out KL
        budget in nats ('' as reward ends it); runs trained on that reward are ranked by held-out gain
        within the budget. Measures the base model's held-out reward on it (a few seconds)."""
        return json.dumps(class_actions.set_challenge(ctx, request, reward, kl_budget))

    for fn in (join, teacher_login, teacher_logout, teacher_pin, teacher_remove_labeller, teacher_class_code, feedback_label):
        gr.api(_one_line(fn), api_name=fn.__name__, concurrency_limit=None)
    # samples the model: every waiting draw joins one batched generate (ui.labelling.PAIRS), so no listener limit
    gr.api(_one_line(feedback_pair), api_name="feedback_pair", concurrency_limit=None)
    # samples the base model once: one at a time, like the page's button
    gr.api(_one_line(teacher_challenge), api_name="teacher_challenge", concurrency_limit=1)


def _int(value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or not lo <= value <= hi:
        raise ValueError(f"response_tokens must be a whole number from {lo} to {hi}")
    return int(value)


def _float(value, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or not lo <= value <= hi:
        raise ValueError(f"temperature must be a number from {lo} to {hi}")
    return float(value)
