"""The reward builder: rows of (component, weight) over the reward's spec text, for every panel with a
reward knob (PPO, GRPO). Lays out and wires only; rows ↔ spec is ``rewards/spec.py``, what is offered
``rewards/choices.py``.

The spec text box is the source of truth the config reads (``comps["reward"]``): a row's change, "add
a term", a row's ✕ and the Python file write the spec; any change of the spec (typed, or a preset's)
redraws the rows when it parses, and otherwise leaves them and says why in one line. The component
lists are the reward registry's (``choices.offered``: on a shared server only what its allowlist
accepts) and the reward models among the runs this user may see. Locally a "Python reward file"
(.py) and a function name add a ``py:PATH:FUNC`` term; on a shared server that upload is not there.

Element ids: ``PREFIX-reward`` (the first row's component, the one a single reward is chosen in),
``PREFIX-reward-N`` (row N's, from 1), ``PREFIX-weight-N``, ``PREFIX-remove-N``, ``PREFIX-reward-add``,
``PREFIX-reward-spec``, ``PREFIX-reward-note``, ``PREFIX-reward-py``, ``PREFIX-reward-func``,
``PREFIX-reward-py-add``.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from rlhf_demo.classroom import limits
from rlhf_demo.classroom.roster import class_challenge
from rlhf_demo.reward_model.inspect import reward_model_runs
from rlhf_demo.rewards.choices import next_component, offered, python_allowed, python_term
from rlhf_demo.rewards.functions import RewardError
from rlhf_demo.rewards.spec import EXAMPLE, MAX_TERMS, SpecError, rows_of, spec_of, with_term, without_term
from rlhf_demo.runs.names import reward_short

SPEC_HELP = (
    f"What the rows make, and what the run uses: Σ weight × component, terms joined by ' + ' or ' - ' with "
    f"spaces around them, e.g. `{EXAMPLE}`. Type a spec here and the rows follow."
)
PY_HELP = (
    "A .py file defining f(texts: list[str]) -> list[float]: it gets the query + response texts, one number "
    "each. It runs on this machine, so only locally (never on a shared server)."
)
PRIVATE = dict(api_visibility="private", show_progress="hidden", queue=False)


def reward_choices(ctx, request=None) -> list[tuple[str, str]]:
    """(label, spec) of every component offered: the registry's (``choices.offered``), then the reward
    models among the runs this user may see (``rm:RUN``; on a shared server ``allowlist.check_reward``
    accepts exactly those)."""
    runs = ctx.visible_runs(request) if request is not None or not limits.current().shared else []
    return [(c, c) for c in offered()] + [(f"rm: reward model {r.name}", reward_short(r)) for r in reward_model_runs(runs)]


def spec_dropdown(cls, name: str, value: str, **extra) -> gr.Dropdown:
    """A reward knob of ``cls`` as one dropdown (the Playground's best-of-N reward): the offered components,
    or a spec typed in (a weighted sum); label and help from the knob's metadata."""
    meta = cls.knob(name).metadata
    return gr.Dropdown(offered(), value=value, allow_custom_value=True, label=meta["label"], info=meta["help"], **extra)


@dataclass
class RewardBuilder:
    """The builder's widgets: ``spec`` is the reward knob's value; ``names`` the component dropdowns."""

    spec: gr.Textbox
    names: list[gr.Dropdown]
    note: gr.Markdown


def _draw(spec: str):
    """The rows of ``spec`` as widget updates (rows, components, weights, row count, note), or only the
    note when it does not parse (the rows keep the last spec that did)."""
    try:
        rows = rows_of(spec)
    except SpecError as exc:
        return [gr.skip()] * (3 * MAX_TERMS + 1) + [f"⚠️ {exc} (the rows show the last spec that parsed)"]
    pad = rows + [(None, 1.0)] * (MAX_TERMS - len(rows))
    return (
        [gr.Row(visible=i < len(rows)) for i in range(MAX_TERMS)]
        + [gr.Dropdown(value=n) for n, _ in pad]
        + [gr.Number(value=w) for _, w in pad]
        + [len(rows), ""]
    )


def reward_builder(ctx, prefix: str, value: str, help_text: str) -> RewardBuilder:
    """Lay out the builder for a panel (``prefix``: ``ppo``, ``grpo``), opening on spec ``value``, and wire
    it. Returns the widgets the panel reads (``spec``) and refreshes (``names``: ``refresh_events``)."""
    first = rows_of(value)
    choices = reward_choices(ctx)
    gr.Markdown(f"**Reward** = Σ weight × component. {help_text}", elem_id=f"{prefix}-reward-help", elem_classes=["small-note"])
    rows, names, weights, removes = [], [], [], []
    for i in range(MAX_TERMS):
        name, weight = first[i] if i < len(first) else (None, 1.0)
        with gr.Row(visible=i < len(first), equal_height=True) as row:
            names.append(
                gr.Dropdown(
                    choices,
                    value=name,
                    allow_custom_value=True,
                    show_label=False,
                    container=False,
                    scale=4,
                    min_width=150,
                    elem_id=f"{prefix}-reward" if i == 0 else f"{prefix}-reward-{i + 1}",
                )
            )
            weights.append(gr.Number(weight, show_label=False, container=False, scale=1, min_width=70, elem_id=f"{prefix}-weight-{i + 1}"))
            removes.append(gr.Button("✕", size="sm", scale=0, min_width=36, elem_id=f"{prefix}-remove-{i + 1}"))
        rows.append(row)
    add = gr.Button("+ add a term", size="sm", elem_id=f"{prefix}-reward-add")
    spec = gr.Textbox(value, label="Reward spec", info=SPEC_HELP, elem_id=f"{prefix}-reward-spec")
    note = gr.Markdown("", elem_id=f"{prefix}-reward-note")
    count = gr.State(len(first))
    py = None
    if python_allowed():
        with gr.Accordion("Python reward file (local only)", open=False, elem_id=f"{prefix}-reward-py-box"):
            py = (
                gr.File(label="Python reward file (.py)", file_types=[".py"], type="filepath", height=110, elem_id=f"{prefix}-reward-py"),
                gr.Textbox("score", label="Function name", info=PY_HELP, elem_id=f"{prefix}-reward-func"),
                gr.Button("Add it as a term", size="sm", elem_id=f"{prefix}-reward-py-add"),
            )

    def on_rows(n, *values):
        """The rows as the user left them → the spec (the rows are redrawn from it), or one line."""
        n = int(n or 0)
        try:
            return spec_of(list(zip(values[:n], values[MAX_TERMS : MAX_TERMS + n]))), ""
        except SpecError as exc:
            return gr.skip(), f"⚠️ {exc}"

    def edit(change):
        """A handler ``spec → (new spec, "")`` that says a SpecError / RewardError in the note instead."""

        def run(*args):
            try:
                return change(*args), ""
            except (SpecError, RewardError) as exc:
                return gr.skip(), f"⚠️ {exc}"

        return run

    def on_add(text):
        used = [n for n, _ in rows_of(text)] if text and text.strip() else []
        name = next_component(used, [c for _, c in choices])
        if name is None:
            raise SpecError("reward builder: every offered component is in the spec already")
        return with_term(text, name)

    drawn = [*rows, *names, *weights, count, note]
    spec.change(_draw, spec, drawn, trigger_mode="always_last", **PRIVATE)
    for widget in names:
        widget.input(on_rows, [count, *names, *weights], [spec, note], **PRIVATE)
    for widget in weights:
        for event in (widget.blur, widget.submit):
            event(on_rows, [count, *names, *weights], [spec, note], **PRIVATE)
    for i, button in enumerate(removes):
        button.click(edit(lambda text, i=i: without_term(text, i)), spec, [spec, note], **PRIVATE)
    add.click(edit(on_add), spec, [spec, note], **PRIVATE)
    if py is not None:
        py[2].click(edit(lambda path, func, text: with_term(text, python_term(path, func))), [py[0], py[1], spec], [spec, note], **PRIVATE)
    return RewardBuilder(spec, names, note)


def refresh_events(ctx, builder: RewardBuilder) -> None:
    """Refresh the component lists (the reward models among the runs this user may see) when the tab is
    shown, the user changes, or a component list is opened."""

    def on_choices(request: gr.Request):
        return [gr.update(choices=reward_choices(ctx, request))] * len(builder.names)

    events = ([ctx.tab.select] if ctx.tab is not None else []) + ([ctx.who.change] if ctx.who is not None else [])
    for event in events + [d.focus for d in builder.names]:
        event(on_choices, None, builder.names, **PRIVATE)

    untouched = builder.spec.value

    def on_challenge(spec: str):
        """The class challenge's reward (``classroom.roster.class_challenge``) while the learner has not
        written their own: a run started as it opens trains on the class's reward."""
        ch = class_challenge(ctx.runs_dir)
        return ch.reward if ch is not None and spec == untouched and ch.reward != spec else gr.skip()

    for event in events:
        event(on_challenge, builder.spec, builder.spec, **PRIVATE)
