"""What every tab shares: the model registry (base models loaded once, read-only), the runs folder,
who each session is, and whose runs are whose. The one training slot of the machine is the core's
training queue (``training.queue.QUEUE``).

Who: a page says who it is once it has loaded (``ui.identity``: the browser's token → a
``classroom.identity.User``, bound here to the page's Gradio ``session_hash``); a client that never
says (the HTTP API) is an anonymous user of its own session. Every handler asks ``ctx.user(request)``.

Whose: a run belongs to the user who started it (``classroom.ownership``: an owner file beside the
runs, so a reload or a restart keeps it). In local use (not shared: no Space, no teacher key) there
are no roles: everyone is owner and teacher, every run is visible. On a shared server a user sees
their own runs, the runs the teacher pinned and the shipped examples; the teacher sees all. Every
tab loads models through ``AppContext.model(name, request)``, whose allowlist (``allowlist.check_model``)
holds the policies of the runs that user may see, and nothing else.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlhf_demo.classroom import allowlist, limits, permissions
from rlhf_demo.classroom.address import client_address
from rlhf_demo.classroom.class_limits import ClassLimits
from rlhf_demo.classroom.identity import User, default_nickname, session_user_id, teacher_key
from rlhf_demo.classroom.key_guard import KeyGuard
from rlhf_demo.classroom.ownership import ClassRecord
from rlhf_demo.classroom.permissions import Permissions
from rlhf_demo.classroom.roster import Roster
from rlhf_demo.models.loading import REGISTRY, ModelRegistry
from rlhf_demo.runs.folder import EXAMPLE_RUN, list_runs, policy_choices, runs_root

MAX_SESSIONS = ClassLimits.max_sessions
"""Pages whose identity is remembered (the least recently active are forgotten first; a forgotten page
is an anonymous user until it loads again)."""
NOT_YOURS = "no run by that name that you may see: choose one of your own runs, a run the teacher pinned, or a shipped example"


def session_of(request=None) -> str:
    """The session hash of ``request``, else of the event Gradio is running now; '' outside an event."""
    if request is None:
        from gradio.context import LocalContext

        request = LocalContext.request.get(None)
    return str(getattr(request, "session_hash", None) or "")


class Sessions:
    """session hash → the User that page said it is (server-side: a client can only name itself).

    Bounded: at most ``max_sessions`` (least recently used dropped first). ``close`` marks a page that
    unloaded; ``sweep`` frees pages closed more than ``grace_s`` ago (a heartbeat that reconnects within
    the grace, or any request of the page, keeps it). Whatever else is kept per session registers an
    ``on_free`` callback, called with the session hash once it is dropped."""

    def __init__(self, max_sessions: int = MAX_SESSIONS, grace_s: float = ClassLimits.session_grace_s):
        self._lock = threading.Lock()
        self._users: OrderedDict[str, User] = OrderedDict()
        self._closed: dict[str, float] = {}
        self.max_sessions, self.grace_s = max_sessions, grace_s
        self.on_free: list[Callable[[str], None]] = []

    def _free(self, sessions: list[str]) -> None:
        for s in sessions:
            for fn in list(self.on_free):
                fn(s)

    def bind(self, session: str, user: User) -> None:
        if not session:
            return
        with self._lock:
            self._users[session] = user
            self._users.move_to_end(session)
            self._closed.pop(session, None)
            dropped = []
            while len(self._users) > self.max_sessions:
                dropped.append(self._users.popitem(last=False)[0])
            for d in dropped:
                self._closed.pop(d, None)
        self._free(dropped)

    def get(self, session: str) -> User | None:
        with self._lock:
            if not session:
                return None
            user = self._users.get(session)
            if user is not None:
                self._users.move_to_end(session)
                self._closed.pop(session, None)  # it is active again
            return user

    def close(self, session: str, now: float | None = None) -> None:
        """The page unloaded: free it after the grace (``sweep``)."""
        with self._lock:
            if session:
                self._closed[session] = time.monotonic() if now is None else now

    def sweep(self, now: float | None = None) -> list[str]:
        """Free the pages closed more than ``grace_s`` ago; returns their session hashes."""
        now = time.monotonic() if now is None else now
        with self._lock:
            gone = [s for s, t in self._closed.items() if now - t >= self.grace_s]
            for s in gone:
                self._closed.pop(s, None)
                self._users.pop(s, None)
        self._free(gone)
        return gone

    def all(self) -> list[User]:
        with self._lock:
            return list(self._users.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._users)


SESSIONS = Sessions()
"""The process's pages and who they are (one server per process)."""


def current_user(request=None, sessions: Sessions = SESSIONS) -> User:
    """The user of ``request`` (or of the event running now): the one its page said it is, else an
    anonymous user of its session. In local use everyone is teacher."""
    session = session_of(request)
    classroom = limits.current().shared
    user = sessions.get(session)
    if user is None:
        uid = session_user_id(session)
        return User(uid, default_nickname(uid), teacher=not classroom, anonymous=True)
    if not classroom and not user.teacher:
        return User(user.id, user.nickname, teacher=True)
    return user


@dataclass
class AppContext:
    """The only state tabs share; every field is declared here."""

    registry: ModelRegistry = field(default_factory=lambda: REGISTRY)
    runs_dir: Path = field(default_factory=runs_root)
    dpo_source: Any = None
    """The DPO panel's "Preference pairs" radio (set when the Training tab is built); the Feedback tab's
    "Use for DPO" button selects "Feedback labels" in it."""
    dpo_whose: Any = None
    """The DPO panel's "Whose labels" radio (mine / the class's)."""
    tab: Any = None
    """The ``gr.Tab`` being built (``app.py`` sets it): a tab may act when it is opened (``tab.select``)."""
    who: Any = None
    """A ``gr.State`` that changes when the page has said who it is (``ui.identity``): tabs whose
    contents depend on the user (runs, model choices, label counts) refresh on its ``change``."""
    model_dropdowns: list = field(default_factory=list)
    """Model dropdowns of the tabs: their choices are set per user once the page has said who it is."""
    live_timer: Any = None
    """The Training tab's live view timer (``ui.training_live``): on only while that tab is open."""
    sessions: Sessions = field(default_factory=lambda: SESSIONS)
    class_limits: ClassLimits = field(default_factory=ClassLimits.from_env)
    roster: Roster = None
    """Known identities, who joined with the class code, removed labellers (``classroom.roster``)."""
    guard: KeyGuard = None
    """Teacher-key guesses (``classroom.key_guard``)."""
    permissions: Permissions = None
    """Who may do what (``classroom.permissions``): ``gate`` asks it."""
    pairs: OrderedDict = field(default_factory=OrderedDict)
    """session → the feedback pair handed to it and not labelled yet (``ui.labelling``); freed with the session."""

    def __post_init__(self):
        lim = self.class_limits
        self.roster = self.roster or Roster(self.runs_dir, lim)
        self.guard = self.guard or KeyGuard(
            free_wrong=lim.key_free_wrong, wrong_per_address=lim.key_wrong_per_address, window_s=lim.key_window_s
        )
        self.permissions = self.permissions or Permissions(lim, self.roster, self.feedback_path)
        self._lock = threading.Lock()
        self.sessions.max_sessions, self.sessions.grace_s = lim.max_sessions, lim.session_grace_s
        self.sessions.on_free.append(self._forget_pair)

    def _forget_pair(self, session: str) -> None:
        with self._lock:
            self.pairs.pop(session, None)

    def hand_out(self, session: str, pair: dict | None) -> None:
        """Remember the feedback pair handed to ``session`` (None: forget it); at most ``max_sessions`` kept."""
        with self._lock:
            self.pairs.pop(session, None)
            if pair is not None and session:
                self.pairs[session] = pair
                while len(self.pairs) > self.class_limits.max_sessions:
                    self.pairs.popitem(last=False)

    def handed(self, session: str) -> dict | None:
        with self._lock:
            return self.pairs.get(session)

    @property
    def record(self) -> ClassRecord:
        return ClassRecord(self.runs_dir)

    # ------------------------------------------------------------------ who
    @staticmethod
    def classroom() -> bool:
        """Roles and ownership are in force (a shared server); else everyone is owner and teacher."""
        return limits.current().shared

    def user(self, request=None) -> User:
        return current_user(request, self.sessions)

    def is_teacher(self, request=None) -> bool:
        return self.user(request).teacher

    @staticmethod
    def teacher_mode() -> bool:
        """A teacher key is set: a class, with a class code (else a public server, or local use)."""
        return bool(teacher_key())

    def feedback_path(self) -> Path:
        """The class's label file (``RLHF_DEMO_FEEDBACK`` or ``RUNS/feedback/labels.jsonl``)."""
        from rlhf_demo.data.feedback import FEEDBACK_ENV

        return Path(os.environ.get(FEEDBACK_ENV) or Path(self.runs_dir) / "feedback" / "labels.jsonl")

    def gate(self, request, action: str) -> User:
        """The user of ``request`` once they may do ``action`` ("train", "label", "pair", "name",
        "teacher"), else ``limits.LimitError`` with one line that says why (``classroom.permissions``).
        Every handler that writes (page events and named API alike) asks this first."""
        user = self.user(request)
        self.permissions.check(user, client_address(request), action, shared=self.classroom(), teacher_mode=self.teacher_mode())
        return user

    # ------------------------------------------------------------------ whose runs
    def register_run(self, request, folder: Path) -> None:
        """Record that the user of ``request`` started the run in ``folder``."""
        u = self.user(request)
        self.record.set_owner(folder, u.id, u.nickname)

    def owns_run(self, request, folder: Path) -> bool:
        return self.record.owner(folder).get("owner") == self.user(request).id

    def may_act(self, request, folder: Path) -> bool:
        """Stop, delete, or anything only the owner may do (``classroom.permissions.may_act``)."""
        return permissions.may_act(self.user(request), self.record, folder)

    def may_see(self, request, folder: Path) -> bool:
        """List, compare, download, load its policy (``classroom.permissions.may_see``)."""
        return permissions.may_see(self.user(request), self.record, folder, EXAMPLE_RUN)

    def visible_runs(self, request=None) -> list[Path]:
        """The run folders (newest first, the shipped example last) this user may see."""
        runs = list_runs(self.runs_dir)
        if self.is_teacher(request):
            return runs
        return [r for r in runs if self.may_see(request, r)]

    def own_runs(self, request=None) -> tuple[str, ...]:
        """The folders of the runs this user may load and score with (``limits.Limits.own_runs``)."""
        return tuple(str(r) for r in self.visible_runs(request) if Path(r).parent != limits.ASSETS)

    def session_limits(self, request=None) -> limits.Limits:
        """The limits in force for this user (the policies of the runs they may see are allowed models)."""
        return limits.current().for_session(self.own_runs(request))

    # ------------------------------------------------------------------ models
    def model(self, name, request=None, progress=None, what: str = "model"):
        """The loaded ModelBundle for ``name`` (None/'' = the default), once the limits allow it;
        LimitError (a ValueError) with one line if not."""
        name = allowlist.check_model(name, limits=self.session_limits(request), what=what)
        return self.registry.get(name, progress=progress)

    def model_choices(self, request=None) -> list[tuple[str, str]]:
        """(label, name) pairs for a model dropdown: every run with a policy in local use; on a shared
        server only what ``model`` accepts (the base model, the examples, the runs this user may see,
        RLHF_DEMO_MODELS)."""
        lim = self.session_limits(request)
        choices = policy_choices(self.runs_dir)
        if not lim.shared:
            return choices
        allowed = allowlist.allowed_models(lim)
        keep = [(label, n) for label, n in choices if n == limits.DEFAULT_MODEL or n in allowed or allowlist.path_key(n) in allowed]
        return keep + [(f"model: {m}", m) for m in lim.extra_models if m not in {n for _, n in keep}]
