"""The Playground tab: where do the words come from? Lays out and wires only.

Generation, re-processing, branching and word-bias numbers come from ``rlhf_demo.decoding.generate`` /
``decoding.explore``; figures from ``rlhf_demo.plots.decoding``. The per-session ``gr.State`` holds
the last generation (token ids, per-step numbers) and a key to its raw logits, which live in the server's one
``LogitStore`` under one byte budget (``decoding/kept.py``; recomputed if evicted) — never a model. Every event
is also an HTTP endpoint, so each one validates its inputs in the core and answers bad input with a
clear ``gr.Error`` while the server keeps serving.

Generate requests of all sessions go through one core ``Batcher`` (``decoding/batch.py``): those that
wait together run as one batched ``model.generate``. Not Gradio's ``batch=True``: a batched listener
reads and writes the ``gr.State`` of the first session of the batch only (the others' states stay
empty or get a neighbour's result: measured with gradio 6.31), and one ``gr.Error`` fails every request
of the batch; the core batcher keeps each session's handler, state, progress and errors its own.
"""

from __future__ import annotations

import json
from dataclasses import replace

import gradio as gr
from gradio.components.plot import PlotData

from rlhf_demo.classroom import limits
from rlhf_demo.decoding.batch import MAX_BATCH_ROWS, Batcher
from rlhf_demo.decoding.config import BEST_OF_N
from rlhf_demo.decoding.explore import bias_frame, branch, candidate_frame, reprocess, sequences_frame, steps_frame
from rlhf_demo.decoding.generate import DecodingConfig, DecodingError, check_prompt, sequence_bias_for
from rlhf_demo.decoding.kept import shared_store
from rlhf_demo.models.loading import DEFAULT_MODEL, ModelLoadError
from rlhf_demo.plots.decoding import (
    COLOR_MAP,
    FORCED_COLOR,
    FORCED_LABEL,
    bias_figure,
    bias_line,
    bias_words,
    candidates_figure,
    entropy_figure,
    highlight,
    processors_markdown,
    samples_html,
)
from rlhf_demo.textcheck import check_text
from rlhf_demo.ui import lab_widgets
from rlhf_demo.ui.context import AppContext
from rlhf_demo.ui.reward_builder import spec_dropdown

INTRO = """### Where do the words come from?
At every step the model gives a probability to each of its 49,152 tokens. Decoding settings reshape that
distribution before a token is picked. Generate, then click a token (or move the step slider) to see the
candidates at that step; move temperature / top-k / top-p / min-p to re-draw the bars at once."""
FIRST_VIEW = """**Press Generate** (or Enter in the prompt). The continuation appears here, each token coloured by the
probability it was chosen with; click a token to see every candidate at that step, what the settings did to
them, and what a word bias changed."""
START = DecodingConfig.preset("playground")
"""What the widgets open with: the ``playground`` preset (``decoding/config.py``)."""
NAMES = [f.name for f in DecodingConfig.knobs()]
"""The decoding knobs in the order of ``knobs`` below and of the public handlers' parameters."""
USER_ERRORS = (DecodingError, ModelLoadError, ValueError)
TOP_N = 10


def build(ctx: AppContext, demo: gr.Blocks) -> None:
    batcher = Batcher()  # shared by every session of this app: concurrent Generate clicks run as one batch
    store = shared_store()  # every session's raw logits, one budget for the whole server

    def forget(st):  # a session's state is deleted (tab closed or TTL): its logits leave the store too
        if st and st.get("result") is not None and st["result"].logits_key:
            store.drop(st["result"].logits_key)

    # {"result": GenerationResult without its logits, "branch": GenerationResult | None}, freed after the TTL
    state = gr.State(None, time_to_live=limits.STATE_TTL_S, delete_callback=forget)
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            prompt = gr.Textbox("The movie was", label="Prompt", lines=3, max_lines=12)
            chat = knob_widget("chat_template")
            model = gr.Dropdown(
                ctx.model_choices(),
                value=DEFAULT_MODEL,
                label="Model",
                allow_custom_value=True,
                info="base model, a trained run, or a local folder / Hub id",
                elem_id="pg-model",
            )
            bias = knob_widget("word_bias", placeholder="great: 5, terrible: -5", elem_id="pg-bias")
            go = gr.Button("Generate", variant="primary")
            status = gr.Markdown("Model loads on the first **Generate** (a few seconds).", elem_id="pg-status")
            strategy = knob_widget("strategy")
            reward = spec_dropdown(DecodingConfig, "reward", START.reward, visible=START.strategy == BEST_OF_N, elem_id="pg-reward")
            temperature, top_k, top_p, min_p = (knob_widget(n) for n in ("temperature", "top_k", "top_p", "min_p"))
            with gr.Accordion("More settings", open=False):
                more = (
                    "repetition_penalty",
                    "no_repeat_ngram_size",
                    "num_beams",
                    "max_new_tokens",
                    "min_new_tokens",
                    "num_samples",
                    "seed",
                )
                rep, ngram, beams, max_new, min_new, samples, seed = (knob_widget(n) for n in more)
        with gr.Column(scale=2):
            hint = gr.Markdown(FIRST_VIEW, elem_id="pg-hint")  # until the first generation: no empty placeholders
            with gr.Column(visible=False, elem_id="pg-results") as results:
                tokens = gr.HighlightedText(
                    label="Output: each token coloured by the probability it was chosen with (click one)",
                    color_map={**COLOR_MAP, FORCED_LABEL: FORCED_COLOR},
                    show_legend=True,
                    elem_id="pg-tokens",
                )
                with gr.Row():
                    seq_pick = gr.Dropdown([1], value=1, label="Explore sequence", scale=1, min_width=160, visible=False)
                    step = gr.Slider(0, 19, 0, step=1, label="Step", scale=4)
                bars = gr.Plot(label="Next-token candidates", elem_id="pg-bars")
                step_info = gr.Markdown(elem_id="pg-step-info")
                with gr.Row():
                    cand = gr.Dropdown([], label="Branch: pick another candidate", scale=3, min_width=260)
                    word = gr.Textbox(label="…or type a word", placeholder="wonderful", scale=2)
                    branch_btn = gr.Button("Branch from this step", scale=1)
                with gr.Row(visible=False, elem_id="pg-branch-view") as branch_view:  # once a branch was made
                    original = gr.HighlightedText(label="Original", color_map={**COLOR_MAP, FORCED_LABEL: FORCED_COLOR}, show_legend=True)
                    branched = gr.HighlightedText(
                        label="Branch (forced tokens in blue)", color_map={**COLOR_MAP, FORCED_LABEL: FORCED_COLOR}, show_legend=True
                    )
                with gr.Row():
                    entropy = gr.Plot(label="Entropy per step")
                    with gr.Column(visible=False) as bias_box:  # while a word bias is set
                        bias_plot = gr.Plot(label="Word bias: without / with", elem_id="pg-bias-plot")
                procs = gr.Markdown()
                with gr.Column(visible=False) as many_box:  # several samples or beams
                    samples_view = gr.HTML(label="Samples side by side")
                    beams_table = gr.Dataframe(
                        label="Sequences (beam search: cumulative log-probability and length-normalised score)",
                        interactive=False,
                        wrap=True,
                        column_widths=["5%", "59%", "9%", "11%", "9%", "7%"],
                    )

    # The public handlers spell out every knob: Gradio names an endpoint's API parameters after the
    # function's own (``*args`` would show as param_2, param_3, …).
    knobs = [strategy, temperature, top_k, top_p, min_p, rep, ngram, beams, max_new, min_new, samples, seed, bias, chat, reward]

    def get_bundle(name, progress=None, request=None):
        """The model through ``ctx.model``: in shared mode only the allowlist (``allowlist.check_model``)."""
        return ctx.model(name, request, progress=progress)

    def step_outputs(st, seq_i, t, cfg):
        """Bars, caption, branch candidates, word bias, entropy and whether the word-bias chart shows, for
        one step (re-processed from stored logits)."""
        seq_i, t = int(seq_i) - 1, int(t)
        bundle = get_bundle(st["result"].model)
        res = store.attach(bundle, st["result"])  # its logits from the store (recomputed if evicted)
        raw_p, p = reprocess(bundle, res, seq_i, t, cfg)
        seq = res.sequences[seq_i]
        chosen = seq.steps[t]
        df = candidate_frame(bundle.tokenizer, raw_p, p, chosen.token_id, n=TOP_N)
        title = f"Step {t}: candidates for the next token (chosen: {chosen.token!r})"
        note = "" if cfg.mode == "sample" else f" In **{cfg.mode}** mode no sampling warpers apply: bars show the processed distribution."
        caption = (
            f"**Step {t}** — chosen {chosen.token!r}: p = {chosen.prob:.1%} when generated (raw {chosen.raw_prob:.1%}), "
            f"entropy {chosen.entropy:.2f} nats. Kept now: {int((p > 0).sum())} of {len(p)} tokens.{note}"
        )
        choices = [(f"{r.token!r}  raw {r.raw_prob:.1%}", int(r.token_id)) for r in df.itertuples() if r.token_id != chosen.token_id]
        words = None
        if cfg.word_bias:
            spellings, biased, without = word_bias_at(bundle, res, seq_i, t, cfg)
            df["bias"] = [biased.get(int(i), 0.0) for i in df["token_id"]]
            df["without"] = [float(without[int(i)]) for i in df["token_id"]]
            words = bias_words(spellings)
            caption += "\n\nChance each biased word comes next, without → with its bias: " + bias_line(words) + "."
        return (
            plot(candidates_figure(df, title)),
            caption,
            gr.update(choices=choices, value=choices[0][1] if choices else None),
            plot(bias_figure(words, t)) if words is not None else None,
            plot(entropy_figure(steps_frame(seq), current=t)),
            gr.Column(visible=words is not None),
        )

    def on_generate(
        prompt,
        model,
        strategy,
        temperature,
        top_k,
        top_p,
        min_p,
        repetition_penalty,
        no_repeat_ngram_size,
        num_beams,
        max_new_tokens,
        min_new_tokens,
        num_samples,
        seed,
        word_bias,
        chat_template,
        reward,
        progress=gr.Progress(),
    ):
        """Generate from `prompt` with `model` (a base model, run or folder); `word_bias` reads "great: 5, terrible: -5"."""
        try:
            cfg = config_from_widgets(locals()).validate()
            check_text(prompt, "the prompt")
            check_prompt(prompt)
            bundle = get_bundle(model, progress=lambda f, m: progress(f, desc=m))
            res = batcher.generate(bundle, prompt, cfg, top_n=TOP_N, keep_logits=True)
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from None
        st = {"result": store.detach(res), "branch": None}
        seq = res.sequences[0]
        frames = [(f"{'beam' if res.mode == 'beam' else 'sample'} {i + 1}", steps_frame(s)) for i, s in enumerate(res.sequences)]
        shared = f" (one batch with {res.batch - 1} other request{'s' * (res.batch > 2)})" if res.batch > 1 else ""
        how = f"best of {len(res.sequences)} by {res.config.reward}" if res.config.strategy == BEST_OF_N else res.mode
        msg = f"Generated {len(seq.steps)} tokens with **{res.model}** ({how}) in {res.seconds:.1f} s{shared}." + "".join(
            f"\n\n⚠️ {n}" for n in res.notices
        )
        picks = list(range(1, len(res.sequences) + 1))
        return (
            st,
            highlight(frames[0][1], res.prompt_text),
            gr.update(choices=picks, value=1, visible=len(picks) > 1),
            gr.update(maximum=max(len(seq.steps) - 1, 1), value=0),
            *step_outputs({"result": res}, 1, 0, res.config),
            processors_markdown(res.processors, res.mode),
            samples_html(res.prompt_text, frames),
            sequences_frame(res),
            msg,
            highlight(frames[0][1], res.prompt_text),
            None,
            gr.Column(visible=True),  # results
            gr.Markdown(visible=False),  # the first-view hint
            gr.Row(visible=False),  # no branch yet
            gr.Column(visible=len(picks) > 1),  # samples side by side / beams
        )

    def on_step(
        st,
        sequence,
        step,
        strategy,
        temperature,
        top_k,
        top_p,
        min_p,
        repetition_penalty,
        no_repeat_ngram_size,
        num_beams,
        max_new_tokens,
        min_new_tokens,
        num_samples,
        seed,
        word_bias,
        chat_template,
        reward,
    ):
        """The candidates at `step` (from 0) of `sequence` (from 1) of this session's last generation, re-processed for these knobs."""
        if not st:
            raise gr.Error("Generate first, then explore its steps.")
        try:
            seq_i, t = _index(sequence, "sequence"), _index(step, "step")
            return step_outputs(st, seq_i, t, config_from_widgets(locals()).validate())
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from None

    def on_pick_sequence(st, seq_i, *knob_values):
        if not st:
            raise gr.Error("Generate first.")
        seq_i = _index(seq_i, "sequence")
        res = st["result"]
        if not 1 <= seq_i <= len(res.sequences):
            raise gr.Error(f"sequence {seq_i} does not exist")
        seq = res.sequences[seq_i - 1]
        return (
            highlight(steps_frame(seq), res.prompt_text),
            gr.update(maximum=max(len(seq.steps) - 1, 1), value=0),
            *on_step(st, seq_i, 0, *knob_values),
            highlight(steps_frame(seq), res.prompt_text),
        )

    def on_token_click(
        st,
        seq_i,
        strategy,
        temperature,
        top_k,
        top_p,
        min_p,
        rep,
        ngram,
        beams,
        max_new,
        min_new,
        samples,
        seed,
        bias,
        chat,
        reward,
        evt: gr.SelectData,
    ):  # gradio fills `evt` only for named parameters, hence no *args
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        t = max(0, int(index) - 1)  # entry 0 is the prompt
        knob_values = (strategy, temperature, top_k, top_p, min_p, rep, ngram, beams, max_new, min_new, samples, seed, bias, chat, reward)
        return (t, *on_step(st, seq_i, t, *knob_values))

    def on_branch(st, sequence, step, token_id, word):
        """Force `token_id` (or the tokens of `word`) at `step` (from 0) of `sequence` (from 1) and let the decoder continue."""
        if not st:
            raise gr.Error("Generate first, then pick a step and a candidate to branch with.")
        try:
            bundle = get_bundle(st["result"].model)
            res = store.attach(bundle, st["result"])
            tid = None if token_id in (None, "") else token_id
            br = branch(bundle, res, _index(sequence, "sequence") - 1, _index(step, "step"), token_id=tid, word=word or None, top_n=TOP_N)
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from None
        orig = res.sequences[_index(sequence, "sequence") - 1]
        new_state = {"result": st["result"], "branch": replace(br, raw_logits=None)}  # the branch's logits are not kept
        return (
            new_state,
            highlight(steps_frame(orig), res.prompt_text),
            highlight(steps_frame(br.sequences[0]), res.prompt_text),
            " ".join(br.notices),
            gr.Row(visible=True),
        )

    step_views = [bars, step_info, cand, bias_plot, entropy, bias_box]  # layout blocks are not in the API's outputs
    generated = [state, tokens, seq_pick, step, *step_views, procs, samples_view, beams_table, status, original, branched]
    generated += [results, hint, branch_view, many_box]
    # As many handlers as one batch has rows may wait at once: the batcher turns them into one generate().
    batching = dict(concurrency_limit=MAX_BATCH_ROWS, concurrency_id="playground-generate", show_progress_on=[status])
    go.click(on_generate, [prompt, model, *knobs], generated, api_name="generate", **batching)
    prompt.submit(on_generate, [prompt, model, *knobs], generated, api_visibility="private", **batching)
    step.release(on_step, [state, seq_pick, step, *knobs], step_views, api_name="step", show_progress="hidden")
    for knob in (temperature, top_k, top_p, min_p):  # re-draw the bars from stored logits, no generation
        knob.input(
            on_step,
            [state, seq_pick, step, *knobs],
            step_views,
            api_visibility="private",
            show_progress="hidden",
            trigger_mode="always_last",
        )
    seq_pick.input(on_pick_sequence, [state, seq_pick, *knobs], [tokens, step, *step_views, original], api_visibility="private")
    tokens.select(on_token_click, [state, seq_pick, *knobs], [step, *step_views], api_visibility="private", show_progress="hidden")
    branch_btn.click(
        on_branch,
        [state, seq_pick, step, cand, word],
        [state, original, branched, status, branch_view],
        api_name="branch",
        show_progress_on=[status],
    )
    strategy.change(lambda s: gr.Dropdown(visible=s == BEST_OF_N), strategy, reward, api_visibility="private", queue=False)
    ctx.model_dropdowns.append(model)  # its choices follow the user and new runs (ui/identity.py)


def config_from_widgets(values: dict) -> DecodingConfig:
    """A handler's knob parameters (its ``locals()``, by name) → a config, through
    ``DecodingConfig.from_inputs`` like the CLI's flags; an empty value is an error, not "the default"."""
    empty = [n for n in NAMES if values[n] is None and n != "word_bias"]
    if empty:
        raise DecodingError(f"{empty[0]} is empty")
    return DecodingConfig.from_inputs(None, {n: values[n] for n in NAMES})


def knob_widget(name: str, **extra):
    """The widget of decoding knob ``name`` from its metadata (``ui/lab_widgets.py``: label, help, the
    slider's span), opening on the ``playground`` preset's value."""
    return lab_widgets.knob_widget(DecodingConfig, name, getattr(START, name), **extra)


def word_bias_at(bundle, res, seq_i: int, t: int, cfg: DecodingConfig):
    """What a word bias does at step ``t``: ``(spellings, biased, without)``. ``spellings``: the rows of
    ``bias_frame`` (one per spelling of each word) with ``without``, the spelling's last token's
    probability after every processor but the bias; ``biased``: token id → bias of the spellings that
    can come next now; ``without``: the processed distribution without the bias ``[V]``::

        without = softmax(processors(cfg with no word bias)(prefix_t, z_t))
    """
    spellings = bias_frame(bundle, res, seq_i, t, cfg)
    _, without = reprocess(bundle, res, seq_i, t, replace(cfg, word_bias={}))
    last = [ids[-1] for w, b in cfg.word_bias.items() for ids, _ in sequence_bias_for(bundle.tokenizer, {w: b})]  # bias_frame's order
    spellings["without"] = [float(without[i]) for i in last]
    biased = {i: float(b) for i, b, now in zip(last, spellings["bias"], spellings["applies"]) if now}
    return spellings, biased, without


def plot(fig: dict) -> PlotData:
    """A figure dict (plotly's JSON schema, ``plots/decoding.py``) as ``gr.Plot`` sends a plotly figure."""
    return PlotData(type="plotly", plot=json.dumps(fig))


def _index(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise gr.Error(f"{what} must be a whole number (got {value!r})")
    return int(value)
