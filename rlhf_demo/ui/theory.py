"""The Theory tab: β and the optimal policy on the real model (panel 3), and a toy policy gradient
(panel 4). Lays out and wires only: the maths is in ``rlhf_demo.theory`` (``optimal``, ``candidates``,
``toy``, ``toy_session``), the figures in ``rlhf_demo.plots.theory``.

Public API endpoints (each handler's parameters are the API's names): ``/theory_candidates``,
``/theory_beta``, ``/toy_reset``, ``/toy_step``, ``/toy_run``. The reference model loads through
``AppContext.model`` and the reward through ``allowlist.check_reward`` (shared mode: allowlists only); the
per-session states live ``limits.STATE_TTL_S`` after their last update.
"""

from __future__ import annotations

import time

import gradio as gr
import pandas as pd

from rlhf_demo.classroom import allowlist, limits
from rlhf_demo.models.loading import DEFAULT_MODEL
from rlhf_demo.plots import theory as plots_theory
from rlhf_demo.rewards.functions import REWARD_CHOICES, make_reward
from rlhf_demo.textcheck import check_text
from rlhf_demo.theory.candidates import CandidatesConfig
from rlhf_demo.theory.optimal import BetaView, beta_view, check_beta
from rlhf_demo.theory.served import CandidatesService
from rlhf_demo.theory.toy_session import ToySession, toy_config_from_text
from rlhf_demo.ui.config_form import strict
from rlhf_demo.ui.lab_widgets import error_line, knob_widget, lab_config, whole

PANEL3 = """### β and the optimal policy
For one prompt, K responses are sampled from the reference and scored with a reward (the same reward
functions as training). Over that set, the policy that maximises *E[r] − β·KL(π‖π_ref)* is
**π\\*(y) ∝ π_ref(y)·exp(r(y)/β)**, with π_ref renormalised over the K candidates. Move β: small β
chases the reward, large β stays at π_ref."""

PANEL4 = """### Toy policy gradient (REINFORCE)
A softmax policy over a few words; you set each word's reward. Each step samples N words and moves the
logits by *lr·A·∇log π(word)* (the log-derivative trick): a **positive advantage pushes its word up, a
negative one pushes it down**. The maximum-likelihood step on the same samples pushes up whatever was
sampled. With a KL penalty β > 0 the policy converges to the analytic π\\* ∝ π_ref·exp(r/β) of the panel above."""

TABLE_COLUMNS = ["response", "reward", "logp_ref", "q_ref", "pi_star"]
USER_ERRORS = (ValueError, TypeError, OverflowError, RuntimeError, OSError)
"""What bad input raises (LimitError, TheoryInputError and RewardError are ValueErrors; int(None) a
TypeError, int(inf) an OverflowError); each becomes the status line."""


def _sig(df: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Numbers to ``digits`` significant digits (tiny updates stay visible, unlike round(4))."""
    return df.map(lambda v: float(f"{v:.{digits}g}") if isinstance(v, float) else v)


def _beta_outputs(view: BetaView):
    """(π* figure, β curves, status markdown, table) of one BetaView."""
    md = (
        f"At β = {view.beta:g}: E_π\\*[r] = **{view.expected_reward:+.3f}** (π_ref: "
        f"{view.ref_expected_reward:+.3f}), KL(π\\*‖π_ref) = **{view.kl:.3f}** nats, "
        f"objective E[r] − β·KL = {view.objective:+.3f}."
    )
    return (
        plots_theory.optimal_policy_figure(view.table, view.beta),
        plots_theory.beta_curves_figure(view.sweep, view.beta),
        md,
        view.table[TABLE_COLUMNS].round(4),
    )


def _toy_outputs(session: ToySession):
    """(status markdown, this-step figure, history figure, samples table, session, whether the samples
    table shows: from the first step on) of the toy."""
    m = session.summary()
    opt = session.optimal()
    md = f"Step {m['step']}: E_π[r] = {m['expected_reward']:+.3f}, KL(π‖π_ref) = {m['kl']:.3f}" + (
        f", distance to π\\* (total variation) = {m['tv_to_optimal']:.4f}" if opt is not None else ""
    )
    if m["beta_log_z"] is not None:
        md += (
            f". At π\\* every word's score r − β·log(π\\*/π_ref) equals β·log Z = {m['beta_log_z']:+.3f}, "
            "so near π\\* the advantages (and the updates) shrink to zero."
        )
    history = plots_theory.toy_history_figure(session.history_frame(), list(session.cfg.words), opt)
    samples = _sig(session.samples_frame())
    return (md, plots_theory.toy_update_figure(session.probs_frame()), history, samples, session, gr.Column(visible=len(samples) > 0))


def build(ctx, demo: gr.Blocks) -> None:
    served = CandidatesService()  # every session's candidates: deduplicated, batched, one model computation at a time
    # ---- panel 3
    gr.Markdown(PANEL3)
    with gr.Row():
        ref_model = gr.Dropdown(
            ctx.model_choices(), value=DEFAULT_MODEL, label="Reference π_ref", allow_custom_value=True, elem_id="th-ref", scale=3
        )
        ctx.model_dropdowns.append(ref_model)  # its choices follow the user and new runs (ui/identity.py)
        reward = gr.Dropdown(REWARD_CHOICES, value="vader-positive", label="Reward", allow_custom_value=True, scale=2)
    with gr.Row():  # the sampler's knobs from CandidatesConfig's metadata (theory/candidates.py)
        prompt = gr.Textbox("The movie was", label="Prompt", scale=3, elem_id="th-prompt")
        k = knob_widget(CandidatesConfig, "k", elem_id="th-k")
        n_tok = knob_widget(CandidatesConfig, "response_tokens", elem_id="th-tokens")
        seed = knob_widget(CandidatesConfig, "seed", elem_id="th-seed")
        sample_btn = gr.Button("Sample candidates", variant="primary", elem_id="th-sample")
    beta = gr.Slider(0.01, 5.0, value=0.2, step=0.01, label="β (KL coefficient)", elem_id="th-beta")
    th_status = gr.Markdown("", elem_id="th-status")
    with gr.Column(visible=False, elem_id="th-results") as results:  # shown with the first candidates: no empty placeholders
        with gr.Row():
            pi_plot = gr.Plot(label="π* beside π_ref", elem_id="th-pistar-plot")
            curves_plot = gr.Plot(label="Expected reward and KL vs β", elem_id="th-curves-plot")
        cand_table = gr.Dataframe(label="Candidates", max_height=320, wrap=True, elem_id="th-candidates")
    cands_state = gr.State(None, time_to_live=limits.STATE_TTL_S)  # ≤ 32 candidates with their numbers

    def sample_theory_candidates(
        reference_model: str, reward: str, prompt: str, k: int, response_tokens: int, seed: int, beta: float, request: gr.Request
    ):
        """Sample K candidates from the reference, score them, and show π* at β over them."""
        outs = [pi_plot, curves_plot, cand_table, cands_state, results]
        yield "Working: loading the reference and sampling candidates…", *[gr.skip()] * len(outs)
        try:
            cfg = lab_config(CandidatesConfig, dict(k=k, response_tokens=response_tokens, seed=seed, reward=reward))
            check_beta(beta)
            check_text(prompt, "the prompt")
            reward_fn = make_reward(allowlist.check_reward(reward))
            bundle = ctx.model(reference_model, request, what="reference")
            cands = served.sample(bundle, prompt, reward_fn, cfg)  # identical clicks: one computation; others batched
            fig, curves, md, show = _beta_outputs(beta_view(cands, beta))
        except USER_ERRORS as exc:
            yield error_line(exc), *[gr.skip()] * len(outs)
            return
        yield f"**Done:** {len(cands)} distinct candidates. " + md, fig, curves, show, cands, gr.Column(visible=True)

    sample_btn.click(
        sample_theory_candidates,
        [ref_model, reward, prompt, k, n_tok, seed, beta],
        [th_status, pi_plot, curves_plot, cand_table, cands_state, results],  # a Column is not in the API's outputs
        api_name="theory_candidates",
        show_progress_on=th_status,
    )

    def move_theory_beta(candidates: pd.DataFrame | None, beta: float):
        """π* at a new β over the candidates this session sampled."""
        if candidates is None or len(candidates) == 0:
            return "Sample candidates first.", gr.skip(), gr.skip(), gr.skip()
        try:
            fig, curves, md, show = _beta_outputs(beta_view(candidates, beta))
        except USER_ERRORS as exc:
            return error_line(exc), gr.skip(), gr.skip(), gr.skip()
        return md, fig, curves, show

    beta.release(move_theory_beta, [cands_state, beta], [th_status, pi_plot, curves_plot, cand_table], api_name="theory_beta")

    # ---- panel 4
    gr.Markdown(PANEL4)
    with gr.Row():
        words = gr.Textbox("great, good, fine, bad, awful", label="Words", scale=3, elem_id="toy-words")
        rewards = gr.Textbox("1, 0.5, 0, -0.5, -1", label="Rewards (one per word)", scale=2, elem_id="toy-rewards")
        ref_probs = gr.Textbox("", label="Reference probabilities (blank = uniform)", scale=2)
    with gr.Row():
        lr = gr.Slider(0.01, 5.0, value=0.5, step=0.01, label="Learning rate")
        n = gr.Slider(1, 64, value=8, step=1, label="Samples per step N")
        baseline = gr.Checkbox(True, label="Baseline (leave-one-out mean)")
        kl_beta = gr.Number(0.5, label="KL penalty β (0 = none)", elem_id="toy-beta")
        toy_seed = gr.Number(0, label="Seed", precision=0)
    with gr.Row():
        reset_btn = gr.Button("Reset", elem_id="toy-reset")
        step_btn = gr.Button("Step once", variant="primary", elem_id="toy-step")
        run_steps = gr.Slider(10, 1000, value=200, step=10, label="Steps per run")
        run_btn = gr.Button("Run", variant="primary", elem_id="toy-run")
        stop_btn = gr.Button("Stop")
    toy_status = gr.Markdown("", elem_id="toy-status")
    with gr.Row():
        update_plot = gr.Plot(label="This step", elem_id="toy-update-plot")
        history_plot = gr.Plot(label="Policy over steps", elem_id="toy-history-plot")
    with gr.Column(visible=False) as samples_box:  # no samples before the first step: no empty table
        samples_table = gr.Dataframe(label="Each sample's update (Δ of its own logit)", max_height=300, elem_id="toy-samples")
    toy_state = gr.State(None, time_to_live=limits.STATE_TTL_S)  # a ToySession (≤ MAX_HISTORY steps of history)

    strict(beta, lr, n, kl_beta, toy_seed, run_steps)  # wrong-typed API input → a clear error
    toy_inputs = [words, rewards, ref_probs, lr, n, baseline, kl_beta, toy_seed]
    outs = [toy_status, update_plot, history_plot, samples_table, toy_state, samples_box]  # a Column is not in the API's outputs
    skip = (gr.skip(),) * (len(outs) - 1)

    def reset_toy(
        words: str,
        rewards: str,
        reference_probs: str,
        learning_rate: float,
        samples_per_step: int,
        baseline: bool,
        kl_beta: float,
        seed: int,
    ):
        """Start the toy policy afresh at π_ref."""
        try:
            cfg = toy_config_from_text(words, rewards, reference_probs, learning_rate, samples_per_step, baseline, kl_beta, seed)
        except USER_ERRORS as exc:
            return error_line(exc), *skip
        return _toy_outputs(ToySession.start(cfg))

    def step_toy(
        words: str,
        rewards: str,
        reference_probs: str,
        learning_rate: float,
        samples_per_step: int,
        baseline: bool,
        kl_beta: float,
        seed: int,
        session: ToySession | None,
    ):
        """One REINFORCE step of this session's toy policy (a fresh one if the words changed)."""
        try:
            cfg = toy_config_from_text(words, rewards, reference_probs, learning_rate, samples_per_step, baseline, kl_beta, seed)
            session = ToySession.resume(session, cfg)
            session.advance(1)
        except USER_ERRORS as exc:
            return error_line(exc), *skip
        return _toy_outputs(session)

    def run_toy(
        words: str,
        rewards: str,
        reference_probs: str,
        learning_rate: float,
        samples_per_step: int,
        baseline: bool,
        kl_beta: float,
        seed: int,
        steps: int,
        session: ToySession | None,
    ):
        """``steps`` REINFORCE steps of this session's toy policy, the views refreshed as it goes."""
        try:
            cfg = toy_config_from_text(words, rewards, reference_probs, learning_rate, samples_per_step, baseline, kl_beta, seed)
            session = ToySession.resume(session, cfg)
            steps = whole(steps, "steps per run")
            chunks = session.run(steps)
        except USER_ERRORS as exc:
            yield error_line(exc), *skip
            return
        end, last_yield = session.step + steps, 0.0
        for _ in chunks:
            if time.monotonic() - last_yield > 0.4 or session.step == end:
                last_yield = time.monotonic()
                yield _toy_outputs(session)

    reset_btn.click(reset_toy, toy_inputs, outs, api_name="toy_reset")
    step_btn.click(step_toy, toy_inputs + [toy_state], outs, api_name="toy_step")
    run_ev = run_btn.click(run_toy, toy_inputs + [run_steps, toy_state], outs, api_name="toy_run", show_progress_on=toy_status)
    stop_btn.click(None, None, None, cancels=[run_ev], api_visibility="private")
    demo.load(reset_toy, toy_inputs, outs, api_visibility="private")
