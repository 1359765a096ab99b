"""The KL tab: KL(π‖π_ref) token by token on real text (panel 1) and the estimator lab (panel 2).

Lays out and wires only; the numbers come from ``kl/analysis.py`` and ``kl/lab.py``, the figures from ``plots/kl.py``.
Models come from the shared registry (loaded once, read-only) through ``AppContext.model``, lazily, with a
status line; in shared mode only the allowed models load and each request's logits are bounded
(``rlhf_demo.classroom.limits``: the prompt's tokens here, N × tokens in ``kl.lab``).
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from rlhf_demo.classroom import limits
from rlhf_demo.kl.analysis import MAX_RESPONSE_TOKENS
from rlhf_demo.kl.lab import WHY_K1_NEGATIVE, EstimatorLabConfig, check_request_size
from rlhf_demo.kl.served import KLService
from rlhf_demo.models.loading import DEFAULT_MODEL
from rlhf_demo.plots import kl as plots_kl
from rlhf_demo.runs.folder import EXAMPLE_RUN
from rlhf_demo.textcheck import check_text
from rlhf_demo.ui.config_form import strict
from rlhf_demo.ui.lab_widgets import error_line, knob_widget, lab_config, whole

INTRO = """### KL between the policy and the reference, token by token
The RLHF objective is *reward − β·KL(π‖π_ref)*. The tab opens on the **shipped PPO-tuned policy** π
against its reference π_ref, the base model it started from: press *Compute KL*. At every response token we
show log π, log π_ref, their difference (the log-ratio, k1), Schulman's k2 and k3, and the **exact** KL over
all 49,152 tokens of the vocabulary. Pick any run's policy instead, or the base model for both with a
*policy temperature* ≠ 1: then π = softmax(logits/T) differs from π_ref by a known amount."""


def opening_policy() -> str:
    """The policy the tab opens on: the shipped example's adapter against the base (so the first click
    shows a real, non-zero KL), or the base model itself when the example is not installed."""
    policy = EXAMPLE_RUN / "policy"
    return EXAMPLE_RUN.name if (policy / "adapter_config.json").exists() else DEFAULT_MODEL  # a short name (runs/names.py), no server path


COLOUR_BY = [("exact KL", "kl_exact"), ("k1 (log-ratio, signed)", "k1"), ("k3", "k3")]
TABLE_COLS = ["position", "token", "logp_policy", "logp_ref", "log_ratio", "kl_exact", "k1", "k2", "k3", "cum_kl_exact", "cum_k1"]


USER_ERRORS = (ValueError, TypeError, OverflowError, RuntimeError, OSError)
"""What bad input raises (LimitError and KLInputError are ValueErrors; int(None) a TypeError, int(inf)
an OverflowError); each becomes the status line."""


def _load(ctx, name, what: str, request=None):
    return ctx.model(name, request, what=what)


MODES = ["generate with the policy", "type it in"]


def mode_inputs(mode) -> tuple:
    """Which panel-1 inputs a response mode uses: (typed response, generated length and seed)."""
    typed = mode == MODES[1]
    return gr.update(visible=typed), gr.update(visible=not typed), gr.update(visible=not typed)


def _totals_md(res) -> str:
    t = res.totals
    src = "sampled from the policy" if res.generated else "typed in"
    return (
        f"**Sequence totals** over {len(res.table)} tokens (response {src}; policy temperature "
        f"{res.policy_temperature:g}): exact KL **{t['kl_exact']:.4f}** nats · k1 {t['k1']:.4f} · "
        f"k2 {t['k2']:.4f} · k3 {t['k3']:.4f}"
    )


def build(ctx, demo: gr.Blocks) -> None:
    served = KLService()  # every session's KL work: deduplicated, batched, one model computation at a time
    gr.Markdown(INTRO)
    with gr.Row():
        policy = gr.Dropdown(
            ctx.model_choices(),
            value=opening_policy(),
            label="Policy π",
            allow_custom_value=True,
            info="a run's policy, the shipped example, or a model folder",
            elem_id="kl-policy",
            scale=3,
        )
        reference = gr.Dropdown(
            ctx.model_choices(),
            value=DEFAULT_MODEL,
            label="Reference π_ref",
            allow_custom_value=True,
            info="usually the base model the policy started from",
            elem_id="kl-reference",
            scale=3,
        )
        temp = gr.Slider(
            0.3, 3.0, value=1.0, step=0.05, label="Policy temperature T", scale=2, info="π = softmax(policy logits / T)", elem_id="kl-temp"
        )

    # ---- panel 1: one text, token by token
    with gr.Group():
        with gr.Row():
            prompt = gr.Textbox("The movie was", label="Prompt", scale=3, elem_id="kl-prompt")
            mode = gr.Radio(MODES, value=MODES[0], label="Response", scale=2, elem_id="kl-mode")
            response = gr.Textbox(
                " great fun, and the cast was wonderful.", label="Typed response", scale=3, elem_id="kl-response", visible=False
            )
        with gr.Row():
            max_new = gr.Slider(1, MAX_RESPONSE_TOKENS, value=20, step=1, label="Generated length (tokens)", elem_id="kl-max-new")
            seed = gr.Number(0, label="Seed", precision=0, elem_id="kl-seed")
            colour_by = gr.Dropdown(COLOUR_BY, value="kl_exact", label="Colour the text by")
            go = gr.Button("Compute KL", variant="primary", elem_id="kl-go")
    status = gr.Markdown("", elem_id="kl-status")
    with gr.Column(visible=False, elem_id="kl-results") as results:  # shown with the first result: no empty placeholders
        highlights = gr.HighlightedText(label="Response coloured by each token's contribution", show_legend=False, elem_id="kl-highlight")
        totals = gr.Markdown("", elem_id="kl-totals")
        per_token_plot = gr.Plot(label="Per-token KL and running total", elem_id="kl-per-token-plot")
        top_plot = gr.Plot(label="Top candidates at the largest-KL position", elem_id="kl-top-plot")
        table = gr.Dataframe(label="Per token (nats)", max_height=360, elem_id="kl-table")
    result_state = gr.State(None, time_to_live=limits.STATE_TTL_S)  # the last per-token table (≤ 64 rows)

    # ---- panel 2: the estimator lab
    gr.Markdown(
        "### Estimator lab: k1, k2, k3 against the exact KL\nSample N responses from π; for each, sum k1, "
        "k2, k3 along the response and compare with the exact value (the per-position exact KL summed "
        "along the same sample). Bias and spread, as in Schulman's table, on the real models."
    )
    with gr.Row():  # the lab's knobs from EstimatorLabConfig's metadata (kl/lab.py); T is the slider above
        n_samples = knob_widget(EstimatorLabConfig, "n_samples", elem_id="kl-lab-n")
        lab_tokens = knob_widget(EstimatorLabConfig, "response_tokens", elem_id="kl-lab-tokens")
        lab_seed = knob_widget(EstimatorLabConfig, "seed", elem_id="kl-lab-seed")
        lab_go = gr.Button("Sample and compare", variant="primary", elem_id="kl-lab-go")
    lab_status = gr.Markdown("", elem_id="kl-lab-status")
    with gr.Column(visible=False, elem_id="kl-lab-results") as lab_results:  # shown with the first result
        lab_plot = gr.Plot(label="Spread of the sequence estimates", elem_id="kl-lab-plot")
        lab_summary = gr.Dataframe(label="Bias and standard deviation (relative to the true KL)", elem_id="kl-lab-summary")
        gr.Markdown(WHY_K1_NEGATIVE)
        lab_samples = gr.Dataframe(label="Samples", max_height=300, elem_id="kl-lab-samples")

    strict(temp, max_new, seed)  # wrong-typed API input → a clear error (the lab's widgets are strict already)

    # ---- wiring
    ctx.model_dropdowns.extend([policy, reference])  # their choices follow the user and new runs (ui/identity.py)
    mode.change(mode_inputs, mode, [response, max_new, seed], api_visibility="private", show_progress="hidden")

    # Gradio names each endpoint's API parameters after the handler's own: they say what they hold.
    def on_compute(
        policy, reference, policy_temperature, prompt, response_mode, response, max_new_tokens, seed, colour_by, request: gr.Request
    ):
        """Per-token KL(π‖π_ref) of a response to `prompt`: sampled from the policy (`response_mode` "generate with the
        policy", `max_new_tokens`, `seed`) or the typed `response` ("type it in")."""
        outs = [highlights, totals, per_token_plot, top_plot, table, result_state, results]
        yield "Working: loading the models and computing…", *[gr.skip()] * len(outs)
        try:
            check_text(prompt, "the prompt"), check_text(response, "the response")
            pb = _load(ctx, policy, "policy", request)
            rb = _load(ctx, reference, "reference", request)
            generated = not isinstance(response_mode, str) or response_mode.startswith("generate")
            typed = None if generated else (response or "")
            n_new = whole(max_new_tokens, "generated length")
            check_request_size(pb.tokenizer, prompt, rows=1, response_tokens=n_new if generated else MAX_RESPONSE_TOKENS)
            res = served.token_kl(
                pb, rb, prompt, typed, max_new_tokens=n_new, policy_temperature=float(policy_temperature), seed=whole(seed or 0, "seed")
            )  # identical clicks: one computation; others batched
        except USER_ERRORS as exc:
            yield error_line(exc), *[gr.skip()] * len(outs)
            return
        tok = res.table["token"].iloc[res.max_position]
        yield (
            "**Done.** " + ("Response sampled from π: " if res.generated else "Typed response: ") + repr(res.response),
            plots_kl.contribution_highlights(res.table, colour_by or "kl_exact"),
            _totals_md(res),
            plots_kl.per_token_figure(res.table),
            plots_kl.top_candidates_figure(res.top, res.max_position, tok),
            res.table[TABLE_COLS].round(5),
            res.table,
            gr.Column(visible=True),
        )

    go.click(
        on_compute,
        [policy, reference, temp, prompt, mode, response, max_new, seed, colour_by],
        [status, highlights, totals, per_token_plot, top_plot, table, result_state, results],  # a Column is not in the API's outputs
        api_name="kl_tokens",
        show_progress_on=status,
    )

    def on_colour(tab: pd.DataFrame | None, by):
        if tab is None or len(tab) == 0:
            return gr.skip()
        return plots_kl.contribution_highlights(tab, by or "kl_exact")

    colour_by.change(on_colour, [result_state, colour_by], highlights, api_visibility="private")

    def on_lab(policy, reference, policy_temperature, prompt, n_samples, response_tokens, seed, request: gr.Request):
        """Sample `n_samples` responses from the policy and compare k1/k2/k3 sequence estimates with the exact KL."""
        outs = [lab_plot, lab_summary, lab_samples, lab_results]
        yield "Working: sampling responses from π and scoring them with both models…", *[gr.skip()] * len(outs)
        try:
            check_text(prompt, "the prompt")
            knobs = dict(n_samples=n_samples, response_tokens=response_tokens, policy_temperature=policy_temperature, seed=seed)
            cfg = lab_config(EstimatorLabConfig, knobs)
            pb = _load(ctx, policy, "policy", request)
            rb = _load(ctx, reference, "reference", request)
            res = served.estimator_lab(pb, rb, prompt, cfg)
        except USER_ERRORS as exc:
            yield error_line(exc), *[gr.skip()] * len(outs)
            return
        k1 = res.summary.set_index("estimator").loc["k1"]
        msg = (
            f"**Done:** {len(res.samples)} samples. True KL ≈ **{res.true_kl:.4f}** nats (mean exact). "
            f"k1 was negative in {k1['frac_negative']:.0%} of the samples; k3 never is."
        )
        yield (
            msg,
            plots_kl.estimator_spread_figure(res.samples, res.true_kl),
            res.summary.round(4),
            res.samples.round(4),
            gr.Column(visible=True),
        )

    lab_go.click(
        on_lab,
        [policy, reference, temp, prompt, n_samples, lab_tokens, lab_seed],
        [lab_status, lab_plot, lab_summary, lab_samples, lab_results],
        api_name="kl_estimator_lab",
        show_progress_on=lab_status,
    )
