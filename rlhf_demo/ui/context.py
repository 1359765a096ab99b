"""What every tab shares: the model registry (base models loaded once, read-only), the runs folder,
and the record of which session started which run. The one training slot of the machine is the
core's training queue (``runs.queue.QUEUE``).

Every tab loads models through ``AppContext.model(name, request)``: in shared mode the name must
pass ``limits.check_model`` (the base model, the shipped examples, this session's own runs, the
ids in ``RLHF_DEMO_MODELS``) before the registry sees it. A session is Gradio's ``session_hash``;
handlers that do not take a ``gr.Request`` get the one Gradio set for the running event.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlhf_demo import limits
from rlhf_demo.models.loading import REGISTRY, ModelRegistry
from rlhf_demo.runs.folder import policy_choices, runs_root

MAX_SESSIONS = 10_000
"""Sessions whose runs are remembered (the oldest are forgotten first)."""


def session_of(request=None) -> str:
    """The session hash of ``request``, else of the event Gradio is running now; '' outside an event."""
    if request is None:
        from gradio.context import LocalContext

        request = LocalContext.request.get(None)
    return str(getattr(request, "session_hash", None) or "")


class SessionRuns:
    """session hash → the run folders it started (server-side; a client can only name its own)."""

    def __init__(self, max_sessions: int = MAX_SESSIONS):
        self._lock = threading.Lock()
        self._runs: OrderedDict[str, list[str]] = OrderedDict()
        self.max_sessions = max_sessions

    def add(self, session: str, folder: Path) -> None:
        if not session:
            return
        with self._lock:
            self._runs.setdefault(session, []).append(str(folder))
            self._runs.move_to_end(session)
            while len(self._runs) > self.max_sessions:
                self._runs.popitem(last=False)

    def of(self, session: str) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._runs.get(session, ())) if session else ()


@dataclass
class AppContext:
    """The only state tabs share; every field is declared here."""

    registry: ModelRegistry = field(default_factory=lambda: REGISTRY)
    runs_dir: Path = field(default_factory=runs_root)
    dpo_source: Any = None
    """The DPO panel's "Preference pairs" radio (set when the Training tab is built); the Feedback tab's
    "Use for DPO" button selects "Feedback labels" in it."""
    session_runs: SessionRuns = field(default_factory=SessionRuns)

    # ------------------------------------------------------------------ sessions and their runs
    def register_run(self, request, folder: Path) -> None:
        """Remember that the session of ``request`` started the run in ``folder``."""
        self.session_runs.add(session_of(request), Path(folder))

    def own_runs(self, request=None) -> tuple[str, ...]:
        return self.session_runs.of(session_of(request))

    def owns_run(self, request, folder: Path) -> bool:
        key = limits.path_key(folder)
        return any(limits.path_key(r) == key for r in self.own_runs(request))

    def session_limits(self, request=None) -> limits.Limits:
        """The limits in force for this session (its own runs' policies are allowed models)."""
        return limits.current().for_session(self.own_runs(request))

    # ------------------------------------------------------------------ models
    def model(self, name, request=None, progress=None, what: str = "model"):
        """The loaded ModelBundle for ``name`` (None/'' = the default), once the limits allow it;
        LimitError (a ValueError) with one line if not."""
        name = limits.check_model(name, limits=self.session_limits(request), what=what)
        return self.registry.get(name, progress=progress)

    def model_choices(self, request=None) -> list[tuple[str, str]]:
        """(label, name) pairs for a model dropdown: every run with a policy in local use; in shared mode
        only what ``model`` accepts (the base model, the examples, this session's runs, RLHF_DEMO_MODELS)."""
        lim = self.session_limits(request)
        choices = policy_choices(self.runs_dir)
        if not lim.shared:
            return choices
        allowed = limits.allowed_models(lim)
        keep = [(label, n) for label, n in choices if n == limits.DEFAULT_MODEL or limits.path_key(n) in allowed]
        return keep + [(f"model: {m}", m) for m in lim.extra_models if m not in {n for _, n in keep}]
