"""The Theory tab: β and the optimal policy on the real model (panel 3), and a toy policy gradient
(panel 4). Lays out and wires only; the maths is in ``theory.py``, the figures in ``plots_kl.py``."""
from __future__ import annotations

import time

import gradio as gr
import pandas as pd
import torch

from rlhf_demo.plots import kl as plots_kl
from rlhf_demo.models.loading import DEFAULT_MODEL
from rlhf_demo.rewards.functions import REWARD_CHOICES, make_reward
from rlhf_demo.runs.folder import policy_choices
from rlhf_demo.theory.optimal import (MAX_CANDIDATE_TOKENS, MAX_CANDIDATES, MAX_TOY_STEPS, CandidatesConfig,
                      TheoryInputError, ToyConfig, beta_sweep, check_beta, log_partition, optimal_table,
                      policy_stats,
                      sample_candidates, toy_initial_logits, toy_metrics, toy_run)

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


MAX_HISTORY = 5000
"""Steps of the toy's history kept per session (older ones are dropped from the plot)."""


def _error(exc: Exception) -> str:
    return f"**Error** ({type(exc).__name__}): {exc}"


def _sig(df: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Numbers to ``digits`` significant digits (tiny updates stay visible, unlike round(4))."""
    return df.map(lambda v: float(f"{v:.{digits}g}") if isinstance(v, float) else v)


def _parse_list(text: str, what: str, cast=str) -> tuple:
    items = [x.strip() for x in (text or "").split(",") if x.strip()]
    try:
        return tuple(cast(x) for x in items)
    except ValueError as exc:
        raise TheoryInputError(f"{what}: comma-separated numbers please ({exc})") from exc


def _toy_config(words, rewards, ref, lr, n, baseline, kl_beta, seed) -> ToyConfig:
    ref_probs = _parse_list(ref, "reference probabilities", float) or None
    return ToyConfig(words=_parse_list(words, "words"), rewards=_parse_list(rewards, "rewards", float),
                     ref_probs=ref_probs, lr=float(lr), batch_size=int(n), baseline=bool(baseline),
                     kl_beta=float(kl_beta), seed=int(seed or 0)).validate()


def _beta_outputs(cands: pd.DataFrame, beta: float):
    beta = check_beta(beta)
    tab = optimal_table(cands, beta)
    lp = torch.tensor(tab["logp_ref"].to_numpy())
    r = torch.tensor(tab["reward"].to_numpy())
    stats = policy_stats(torch.tensor(tab["pi_star"].to_numpy()).log(), lp, r, beta)
    md = (f"At β = {beta:g}: E_π\\*[r] = **{stats['expected_reward']:+.3f}** (π_ref: "
          f"{(tab['q_ref'] * tab['reward']).sum():+.3f}), KL(π\\*‖π_ref) = **{stats['kl']:.3f}** nats, "
          f"objective E[r] − β·KL = {stats['objective']:+.3f}.")
    show = tab[["response", "reward", "logp_ref", "q_ref", "pi_star"]].sort_values("reward", ascending=False)
    return (plots_kl.optimal_policy_figure(tab, beta), plots_kl.beta_curves_figure(beta_sweep(lp, r), beta),
            md, show.round(4))


def build(ctx, demo: gr.Blocks) -> None:
    # ---- panel 3
    gr.Markdown(PANEL3)
    with gr.Row():
        ref_model = gr.Dropdown(policy_choices(), value=DEFAULT_MODEL, label="Reference π_ref",
                                allow_custom_value=True, elem_id="th-ref", scale=3)
        refresh = gr.Button("↻ Refresh model list", scale=1)
        reward = gr.Dropdown(REWARD_CHOICES, value="vader-positive", label="Reward", allow_custom_value=True, scale=2)
    with gr.Row():
        prompt = gr.Textbox("The movie was", label="Prompt", scale=3, elem_id="th-prompt")
        k = gr.Slider(2, MAX_CANDIDATES, value=12, step=1, label="K candidates", elem_id="th-k")
        n_tok = gr.Slider(2, MAX_CANDIDATE_TOKENS, value=10, step=1, label="Tokens per candidate")
        seed = gr.Number(0, label="Seed", precision=0)
        sample_btn = gr.Button("Sample candidates", variant="primary", elem_id="th-sample")
    beta = gr.Slider(0.01, 5.0, value=0.2, step=0.01, label="β (KL coefficient)", elem_id="th-beta")
    th_status = gr.Markdown("", elem_id="th-status")
    with gr.Row():
        pi_plot = gr.Plot(label="π* beside π_ref", elem_id="th-pistar-plot")
        curves_plot = gr.Plot(label="Expected reward and KL vs β", elem_id="th-curves-plot")
    cand_table = gr.Dataframe(label="Candidates", max_height=320, wrap=True)
    cands_state = gr.State(None)

    def on_refresh():
        return gr.update(choices=policy_choices())

    refresh.click(on_refresh, None, ref_model, api_visibility="private")

    def on_sample(name, rw, p, kk, nt, s, b):
        outs = [pi_plot, curves_plot, cand_table, cands_state]
        yield f"Working: loading {name} and sampling {int(kk)} candidates…", *[gr.skip()] * len(outs)
        try:
            cfg = CandidatesConfig(k=int(kk), response_tokens=int(nt), seed=int(s or 0), reward=rw).validate()
            check_beta(b)
            bundle = ctx.registry.get((name or DEFAULT_MODEL).strip() or DEFAULT_MODEL)
            cands = sample_candidates(bundle, p, make_reward(rw), cfg)
            fig, curves, md, show = _beta_outputs(cands, b)
        except (ValueError, RuntimeError, OSError) as exc:
            yield _error(exc), *[gr.skip()] * len(outs)
            return
        yield f"**Done:** {len(cands)} distinct candidates. " + md, fig, curves, show, cands

    sample_btn.click(on_sample, [ref_model, reward, prompt, k, n_tok, seed, beta],
                     [th_status, pi_plot, curves_plot, cand_table, cands_state], api_name="theory_candidates",
                     show_progress_on=th_status)

    def on_beta(cands, b):
        if cands is None or len(cands) == 0:
            return "Sample candidates first.", gr.skip(), gr.skip(), gr.skip()
        try:
            fig, curves, md, show = _beta_outputs(cands, b)
        except ValueError as exc:
            return _error(exc), gr.skip(), gr.skip(), gr.skip()
        return md, fig, curves, show

    beta.release(on_beta, [cands_state, beta], [th_status, pi_plot, curves_plot, cand_table], api_name="theory_beta")

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
    samples_table = gr.Dataframe(label="Each sample's update (Δ of its own logit)", max_height=300,
                                 elem_id="toy-samples")
    toy_state = gr.State(None)  # {"logits": [...], "step": int, "history": [{step, word: p}], "words": [...]}

    toy_inputs = [words, rewards, ref_probs, lr, n, baseline, kl_beta, toy_seed]

    def _fresh(cfg: ToyConfig) -> dict:
        p0 = torch.softmax(toy_initial_logits(cfg), -1).tolist()
        return {"logits": toy_initial_logits(cfg).tolist(), "step": 0, "words": list(cfg.words),
                "history": [{"step": 0, **dict(zip(cfg.words, p0))}]}

    def _views(cfg: ToyConfig, state: dict, last=None):
        opt = cfg.optimal_probs()
        hist = plots_kl.toy_history_figure(pd.DataFrame(state["history"]), list(cfg.words),
                                           opt.tolist() if opt is not None else None)
        m = toy_metrics(cfg, torch.tensor(state["logits"]))
        md = (f"Step {state['step']}: E_π[r] = {m['expected_reward']:+.3f}, KL(π‖π_ref) = {m['kl']:.3f}"
              + (f", distance to π\\* (total variation) = {m['tv_to_optimal']:.4f}" if opt is not None else ""))
        if opt is not None:
            blz = cfg.kl_beta * log_partition(cfg.log_ref, cfg.reward_tensor, cfg.kl_beta)
            md += (f". At π\\* every word's score r − β·log(π\\*/π_ref) equals β·log Z = {blz:+.3f}, "
                   "so near π\\* the advantages (and the updates) shrink to zero.")
        if last is None:
            probs = pd.DataFrame({"word": list(cfg.words), "before": torch.softmax(torch.tensor(state["logits"]), -1).numpy()})
            if opt is not None:
                probs["optimal"] = opt.numpy()
            return md, plots_kl.toy_update_figure(probs), hist, pd.DataFrame()
        return (md, plots_kl.toy_update_figure(last.probs_table(opt)), hist, _sig(last.samples_table()))

    def _state_for(cfg: ToyConfig, state):
        if not state or state.get("words") != list(cfg.words) or len(state["logits"]) != len(cfg.words):
            return _fresh(cfg)
        return state

    def on_reset(*vals):
        try:
            cfg = _toy_config(*vals)
        except ValueError as exc:
            return _error(exc), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        state = _fresh(cfg)
        return (*_views(cfg, state), state)

    def _advance(cfg, state, steps):
        last = None
        for rec in toy_run(cfg, steps, torch.tensor(state["logits"]), state["step"]):
            last = rec
            state["history"].append({"step": rec.step, **dict(zip(cfg.words, rec.probs_after.tolist()))})
        state["history"] = state["history"][-MAX_HISTORY:]
        state["logits"], state["step"] = last.logits_after.tolist(), last.step
        return last

    def on_step(*vals):
        *args, state = vals
        try:
            cfg = _toy_config(*args)
            state = _state_for(cfg, state)
            last = _advance(cfg, state, 1)
        except ValueError as exc:
            return _error(exc), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return (*_views(cfg, state, last), state)

    def on_run(*vals):
        *args, steps, state = vals
        try:
            cfg = _toy_config(*args)
            steps = int(steps)
            if not 1 <= steps <= MAX_TOY_STEPS:
                raise TheoryInputError(f"steps must be 1…{MAX_TOY_STEPS}")
            state = _state_for(cfg, state)
        except ValueError as exc:
            yield _error(exc), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        done, last_yield = 0, 0.0
        while done < steps:
            chunk = min(25, steps - done)
            last = _advance(cfg, state, chunk)
            done += chunk
            if time.monotonic() - last_yield > 0.4 or done == steps:
                last_yield = time.monotonic()
                yield (*_views(cfg, state, last), state)

    outs = [toy_status, update_plot, history_plot, samples_table, toy_state]
    reset_btn.click(on_reset, toy_inputs, outs, api_name="toy_reset")
    step_btn.click(on_step, toy_inputs + [toy_state], outs, api_name="toy_step")
    run_ev = run_btn.click(on_run, toy_inputs + [run_steps, toy_state], outs, api_name="toy_run",
                           show_progress_on=toy_status)
    stop_btn.click(None, None, None, cancels=[run_ev])
    demo.load(on_reset, toy_inputs, outs, api_visibility="private")
