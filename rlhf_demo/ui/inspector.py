"""The token inspector panel (issue 26): one update of a run, token by token — a step, an episode (PPO,
GRPO) or a preference pair (DPO), its tokens coloured by what pushed them (``plots.tokens.strip_html``),
a token picker, and the selected token's formula panel (``plots.tokens.formula_html``). Clicking a token
in the coloured strip selects it. Lays out and wires only: the numbers come from
``rlhf_demo.inspector.inspect_run`` (the run folder's per-token store), the HTML from ``plots.tokens``.

A tab embeds it with ``build(ctx, run_source)``: ``run_source`` names the run chosen elsewhere — a
component (a ``gr.State``, a Dropdown, a Textbox) whose value is a run's label, folder name or path (the
panel follows its ``change``), or a callable ``(request) -> name | None`` asked when "Show" is clicked.
Reads are gated as in the Runs tab: only the runs this user may see (``AppContext.visible_runs``, i.e.
``classroom.permissions.may_see``); any other name, foreign or unknown, gets the same one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from rlhf_demo.algorithms import find
from rlhf_demo.plots.tokens import default_key, formula_html, strip_html, token_choices
from rlhf_demo.runs.compare import run_label
from rlhf_demo.runs.folder import read_json
from rlhf_demo.training.queue import QUEUE
from rlhf_demo.ui.context import NOT_YOURS, AppContext

NO_RUN = "Choose a run to see its tokens."
SAVED = "saved policy"
"""DPO's ``source`` when the view is the saved policy's (``dpo/inspect.py``): its step is not a stored update."""
NO_STORE = "This run kept no per-token record (trained before the inspector existed, or a reward model): train a new run to see its tokens."
HELP = (
    "**Why did this token go up?** Pick an update (blank step = the last) and an episode (GRPO: a prompt's group of "
    "completions; DPO: a preference pair; "
    "with a step, the pair of that step's batch as its loss saw it; blank step = the run's saved policy on the pair of "
    "its training set, or the last step while it trains). Blue tokens were pushed up, orange down; "
    "click one to see its objective with its own numbers."
)
CLICK_JS = """
element.addEventListener('click', (e) => {
  const t = e.target.closest('.tok[data-index]');
  if (t && element.contains(t)) trigger('click', {token: t.dataset.index});
});
"""
"""A click on a token span of the strip sends its KEY (``data-index``) to the server."""


@dataclass
class InspectorPanel:
    """The panel's components (a tab may wire more events to them)."""

    note: gr.Markdown
    step: gr.Number
    index: gr.Number
    show: gr.Button
    strip: gr.HTML
    token: gr.Dropdown
    formula: gr.HTML
    data: gr.State


def _line(exc: Exception) -> str:
    """One line of an error, at most 200 characters."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def loader(ctx: AppContext, request, progress=None):
    """``load(name, what)`` for the inspectors: the app's model registry (``AppContext.model``: this
    user's allowlist, counted and evicted like every model the app holds), saying "loading {what}…"
    on ``progress`` (a ``gr.Progress``) first."""

    def load(name: str, what: str = "model"):
        if progress is not None:
            progress(0.1, desc=f"loading {what}…")
        return ctx.model(name, request, what=what)

    return load


def build(ctx: AppContext, run_source, prefix: str = "insp") -> InspectorPanel:
    """The panel, laid out where it is called; ``prefix`` keeps its elem_ids apart when a page embeds it twice."""
    is_component = isinstance(run_source, gr.components.Component)
    if not is_component and not callable(run_source):
        raise TypeError("run_source: a component whose value names a run, or a callable (request) -> run name")
    gr.Markdown(HELP)
    with gr.Row():
        step = gr.Number(None, label="Step (update; blank or 0 = the last)", precision=0, minimum=0, elem_id=f"{prefix}-step", scale=1)
        index = gr.Number(0, label="Episode (GRPO: group; DPO: pair)", precision=0, minimum=0, elem_id=f"{prefix}-index", scale=1)
        show = gr.Button("Show tokens", size="sm", elem_id=f"{prefix}-show", scale=0)
    note = gr.Markdown(NO_RUN, elem_id=f"{prefix}-note")
    data = gr.State(None)
    strip = gr.HTML("", elem_id=f"{prefix}-strip", js_on_load=CLICK_JS)
    token = gr.Dropdown([], label="Token", elem_id=f"{prefix}-token", allow_custom_value=False)
    formula = gr.HTML("", elem_id=f"{prefix}-formula")

    def folder_of(run, request) -> Path | None:
        """The folder of the run named ``run`` among those this user may see; None when none is named;
        ValueError(NOT_YOURS) for any other name."""
        if not run:
            return None
        name = str(run)
        for r in ctx.visible_runs(request):
            if name in (run_label(r), r.name, str(r)) or name.removeprefix("run:") == r.name:
                return r
        job = QUEUE.current()
        if is_component and job is not None and job.out is not None and name == job.out.name:
            return job.out  # the run training now: the class's live box already shows its batch to everyone
        raise ValueError(NOT_YOURS)

    def load(run, step_k, idx, request: gr.Request, progress=gr.Progress()):
        """The run's update ``step_k`` (None: the last), episode or pair ``idx``: the note, the dict, the
        strip, the token picker (on the hardest-pushed token), its formula and the step shown. A model
        an inspector needs (DPO's saved policy) comes from the app's registry, with a progress line."""
        empty = (None, "", gr.update(choices=[], value=None), "", gr.skip())
        if run is None and not is_component:
            run = run_source(request)
        try:
            folder = folder_of(run, request)
        except ValueError:
            return (f"{str(run)[:80]!r}: {NOT_YOURS}.", *empty)
        if folder is None:
            return (NO_RUN, *empty)
        alg = find(read_json(folder / "config.json").get("algo"))
        if alg is None:
            return (NO_STORE, *empty)
        from rlhf_demo.inspector import inspect_run  # DPO's inspector loads the saved policy: imported when used

        which = {"pair" if alg.from_pairs else "episode": int(idx or 0)}
        try:
            d = inspect_run(folder, step=int(step_k) if step_k else None, load=loader(ctx, request, progress), **which)
        except FileNotFoundError:
            return (NO_STORE, *empty)
        except (ValueError, IndexError, KeyError) as exc:
            return (_line(exc), *empty)
        key = default_key(d)
        saved = d.get("source") == SAVED
        line = f"**{alg.label}** run `{run_label(folder)}`" + (f" · step {d['step']}" if d.get("step") and not saved else "")
        if saved:
            line += f" · its saved policy (after step {d['step']})" if d.get("step") else " · its saved policy"
        if d.get("batch") is not None:
            line += f" · pair {d.get('batch_pair')} of the step's batch (training pair {d.get('pair')})"
        if d.get("steps"):
            line += f" (updates stored: {d['steps'][0]}–{d['steps'][-1]})"
        shown_step = int(step_k) if step_k else None  # blank stays blank: Show again follows a live run's latest step
        return (line, d, strip_html(d, key), gr.update(choices=token_choices(d), value=key), formula_html(d, key), shown_step)

    def pick(d, key):
        """The strip with ``key`` ringed and its formula panel."""
        if not d:
            return "", ""
        return strip_html(d, key), formula_html(d, key)

    def click(d, evt: gr.EventData):
        key = str(getattr(evt, "token", "") or "")
        if not d or not key:
            return gr.skip(), gr.skip(), gr.skip()
        return strip_html(d, key), gr.update(value=key), formula_html(d, key)

    source = [run_source] if is_component else [gr.State(None)]
    outs = [note, data, strip, token, formula, step]
    private = {"api_visibility": "private"}  # a page may embed it twice; the named API is ``/inspect``'s (elsewhere)
    show.click(load, [*source, step, index], outs, **private)
    step.submit(load, [*source, step, index], outs, **private)
    index.submit(load, [*source, step, index], outs, **private)
    if is_component:

        def follow(run, idx, request: gr.Request):
            """A new run was chosen: its last update."""
            return load(run, None, idx, request)

        run_source.change(follow, [run_source, index], outs, **private)
    token.input(pick, [data, token], [strip, formula], show_progress="hidden", **private)
    strip.click(click, data, [strip, token, formula], show_progress="hidden", **private)
    return InspectorPanel(note, step, index, show, strip, token, formula, data)
