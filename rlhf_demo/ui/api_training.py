"""The named training API: ``/train_start``, ``/train_status`` and ``/train_stop`` (``docs/api-training.md``).

Three ``gr.api`` endpoints over the same path as the Training tab's Start and Stop buttons
(``training_run.start``: the session may train, the shared server's limits with the session's
knowledge, ``rm:`` folders, a run folder recorded as the caller's, the app's training queue). A
client is the user its Gradio session is (``ui.context``): it sees and stops its own runs; the
teacher any. Nothing here relies on being private: every check is in the handler. Wires only.

Each endpoint returns one JSON object as a string; a refusal is a ``gr.Error`` with one line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import gradio as gr

from rlhf_demo.algorithms import ALGORITHMS, config_class, get
from rlhf_demo.classroom import limits
from rlhf_demo.runs.folder import read_json
from rlhf_demo.runs.state import run_state
from rlhf_demo.training.queue import QUEUE, WAITING, Job, QueueError
from rlhf_demo.ui import training_run
from rlhf_demo.ui.context import NOT_YOURS, AppContext
from rlhf_demo.ui.training_dpo import SOURCES, WHOSE, load_source

MAX_SETTINGS_CHARS = 20_000
MAX_RUN_CHARS = 200
EXAMPLE = '{"steps": 1, "batch_size": 8, "eval_final": false}'
STATES = {"loading": "running", "cancelled": "stopped"}
"""The queue's words → the API's (waiting, running, finished, stopped, interrupted, diverged, failed)."""
NOTHING_TO_STOP = "nothing to stop: the run is not waiting or running"


# ----------------------------------------------------------------------------- inputs
def parse_settings(cls, settings) -> dict:
    """``settings`` (a string holding a JSON object: knob → value) → a dict of overrides; ValueError in
    one line for bad JSON, anything but an object, a knob ``cls`` does not have, or a nested value."""
    if settings is None or (isinstance(settings, str) and not settings.strip()):
        return {}
    if not isinstance(settings, str) or len(settings) > MAX_SETTINGS_CHARS:
        raise ValueError(f"settings must be a string holding a JSON object of at most {MAX_SETTINGS_CHARS} characters, e.g. {EXAMPLE}")
    try:
        obj = json.loads(settings)
        json.dumps(obj, ensure_ascii=False).encode("utf-8")  # lone surrogates ("\ud800") are not text
    except (ValueError, RecursionError, UnicodeError):
        raise ValueError(f"settings is not valid JSON: send a JSON object of knob overrides, e.g. {EXAMPLE}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"settings must be a JSON object of knob overrides, e.g. {EXAMPLE}")
    known = {f.name for f in cls.knobs()}
    unknown = [k for k in obj if k not in known]
    if unknown:
        names = ", ".join(repr(k[:40]) for k in unknown[:3]) + (" …" if len(unknown) > 3 else "")
        raise ValueError(
            f"unknown {cls.algo.upper()} setting {names}: the settings are the knobs of "
            f"`python -m rlhf_demo train --algo {cls.algo} --help` (with _ for -)"
        )
    for k, v in obj.items():
        if isinstance(v, dict) or (isinstance(v, list) and any(isinstance(x, (list, dict)) for x in v)):
            raise ValueError(f"{k}: a number, text, true/false or a list of numbers; got a nested value")
    return obj


def build_config(algo, preset, settings, lim: limits.Limits):
    """The validated config: ``preset`` ('' = the algorithm's default), then ``settings``. On a shared
    server the knobs the caller did not set are moved inside its limits, as the page's widgets are
    (a preset's "no time limit" becomes the cap), so a call with the defaults is not refused."""
    cls = config_class(algo)
    if preset is not None and not isinstance(preset, str):
        raise ValueError(f"preset must be text: one of {', '.join(cls.PRESETS)} ('' = {cls.DEFAULT_PRESET})")
    preset = (preset or "").strip() or None
    overrides = parse_settings(cls, settings)
    base = cls.preset(preset)  # an unknown preset: one line naming the choices
    fitted = {f.name: lim.fit(f.name, getattr(base, f.name)) for f in cls.knobs() if f.name not in overrides}
    moved = {k: v for k, v in fitted.items() if v != getattr(base, k)}
    return cls.from_inputs(preset, {**moved, **overrides}).validate(), preset


def training_data(ctx: AppContext, cfg, request) -> dict:
    """What the trainer trains on, as the page gives it: the Feedback tab's labels (the class's, one per
    pair by majority vote) or a Hub dataset, loaded now (a problem is said at Start, not in the queue);
    else None (the trainer loads ``cfg.preferences`` / ``cfg.prompts``). Uploads go through the page."""
    pairs = get(cfg.algo).from_pairs
    source = getattr(cfg, "preferences" if pairs else "prompts", "")
    if isinstance(source, str) and source.startswith(limits.UPLOAD):
        raise ValueError(
            f"{source[:60]!r}: uploads go through the Training tab; the API takes the built-in sets, "
            "'feedback' (preference pairs) or a Hub dataset id (hf:OWNER/NAME)"
        )
    if not pairs:
        return {}
    if source == "feedback":
        return {"pairs": load_source(ctx, SOURCES[1], None, "", WHOSE[1], request).rows}
    if source.startswith("hf:"):
        return {"pairs": load_source(ctx, SOURCES[3], None, source[3:], None, request).rows}
    return {}


def run_folder(ctx: AppContext, run) -> Path | None:
    """The folder ``run`` names among the app's runs (a folder name only), else None."""
    if not isinstance(run, str) or not run.strip() or len(run) > MAX_RUN_CHARS:
        return None
    name = run.strip()
    if "/" in name or "\\" in name or name.startswith(".") or "\x00" in name:
        return None
    return Path(ctx.runs_dir) / name


def not_yours(run) -> gr.Error:
    return gr.Error(f"{str(run)[:80]!r}: {NOT_YOURS}")


# ----------------------------------------------------------------------------- outputs
def job_status(job: Job) -> dict:
    """A queued job as the API reports it."""
    last = job.records[-1] if job.records else {}
    state = STATES.get(job.state, job.state)
    out = {
        "run": job.out.name,
        "algo": job.algo,
        "state": state,
        "step": int(last.get("step", 0) or 0),
        "total_steps": int(job.total_steps or 0),
        "lines": "\n".join(job.lines),
    }
    if state == WAITING:
        out.update(position=QUEUE.position(job), eta_s=round(QUEUE.eta_s(job), 1), lines=QUEUE.waiting_line(job))
    if job.error:
        out["error"] = job.error
    out["metrics"] = numbers(last)
    return out


def numbers(record: dict) -> dict:
    """The finite numbers of a metrics record (strict JSON has no NaN)."""
    return {k: v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def folder_status(folder: Path) -> dict:
    """A run the queue no longer holds (or never held: the CLI's), read from its folder."""
    st = run_state(folder)
    total = read_json(folder / "config.json").get("steps") or 0
    return {
        "run": st["name"],
        "algo": st["algo"],
        "state": st["status"],
        "step": st["steps"],
        "total_steps": int(total) if isinstance(total, (int, float)) else 0,
        "lines": st["message"],
        "metrics": numbers(st["last"]),
    }


# ----------------------------------------------------------------------------- endpoints
def build(ctx: AppContext, demo: gr.Blocks) -> None:
    """Register the three endpoints; call it inside ``demo``'s ``with gr.Blocks()`` (``app.build_demo``)."""

    def train_start(algo: str, preset: str = "", settings: str = "{}", request: gr.Request = None) -> str:
        """Start a training: algo (ALGOS), preset ('' = the default, e.g. quick-cpu) and
        settings (a JSON object of knob overrides, e.g. {"steps": 1, "batch_size": 8, "eval_final": false}).
        Returns a JSON object: run (the run's name), state, position (0 = training now, k = k-th in line)."""
        try:
            ctx.gate(request, "train")  # before any data is loaded (training_run.start asks again)
            cfg, preset_name = build_config(algo, preset, settings, ctx.session_limits(request))
            data = training_data(ctx, cfg, request)
        except training_run.USER_ERRORS as exc:
            raise gr.Error(str(exc)) from exc
        job = training_run.start(ctx, request, cfg, preset_name, **data)
        return json.dumps({**job_status(job), "position": QUEUE.position(job)})

    def train_status(run: str, request: gr.Request = None) -> str:
        """The state of a run you may see: a JSON object with state (waiting, running, finished, stopped,
        interrupted, diverged, failed), step, total_steps, lines (the status text), position when waiting."""
        job = QUEUE.find_run(run)
        folder = job.out if job is not None else run_folder(ctx, run)
        if folder is None or not ctx.may_see(request, folder) or (job is None and not (folder / "config.json").is_file()):
            raise not_yours(run)
        return json.dumps(job_status(job) if job is not None else folder_status(folder))

    def train_stop(run: str, request: gr.Request = None) -> str:
        """Stop a run after its current step, or take it out of the queue (its owner or the teacher).
        Returns a JSON object: run, state, said."""
        job = QUEUE.find_run(run)
        folder = job.out if job is not None else run_folder(ctx, run)
        if folder is None or not ctx.may_act(request, folder) or (job is None and not (folder / "config.json").is_file()):
            raise not_yours(run)
        said = NOTHING_TO_STOP
        if job is not None and not job.done:
            try:
                mine = job.owner == ctx.user(request).id
                said = QUEUE.remove(job.id, **({"why": "You left the queue."} if mine else {}))  # else: the teacher's line
            except QueueError:  # it ended meanwhile
                pass
        st = job_status(job) if job is not None else folder_status(folder)
        return json.dumps({"run": st["run"], "state": st["state"], "said": said})

    train_start.__doc__ = train_start.__doc__.replace("ALGOS", ", ".join(ALGORITHMS))  # the registered algorithms
    for fn in (train_start, train_status, train_stop):
        gr.api(fn, api_name=fn.__name__, concurrency_limit=None)
