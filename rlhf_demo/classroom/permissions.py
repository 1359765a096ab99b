"""Who may do what on a shared server: the one place every writing handler (page events and named API
alike) asks, through ``ui.context.AppContext.gate``. Refusals are ``limits.LimitError`` with one line
that says why.

Actions: ``"teacher"`` (the teacher only), ``"pair"`` (draw a pair to label: joined is enough),
``"label"`` (joined, not removed by the teacher, within the per-identity rate and cap, the class's
total and the per-address rate), ``"train"`` (joined; on a public server without a teacher also at
most ``waiting_trainings_per_address`` waiting trainings from one network), ``"name"`` (joined).
In local use (not shared) and for the teacher every action but ``"teacher"`` is allowed.

Whose runs: the owner and the teacher may act on a run (stop, delete); anyone may see it once the
teacher pinned it, or when it is a shipped example.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from rlhf_demo.classroom import allowlist, limits
from rlhf_demo.classroom.class_limits import ClassLimits
from rlhf_demo.classroom.identity import User
from rlhf_demo.classroom.ownership import ClassRecord
from rlhf_demo.classroom.rate import Buckets
from rlhf_demo.classroom.roster import Roster

NOT_JOINED = "join the class first: type the class code your teacher shows into the box at the top of the page"
ONLY_TEACHER = "only the teacher can do this: unlock teacher mode with the key at the top of the page"
ACTIONS = ("teacher", "pair", "label", "train", "name")


class Permissions:
    """Thread-safe; holds the per-identity and per-address label buckets and who trained from where."""

    def __init__(self, class_limits: ClassLimits, roster: Roster, feedback_path: Callable[[], Path]):
        self.limits, self.roster, self.feedback_path = class_limits, roster, feedback_path
        self._label_ids = Buckets(class_limits.label_burst, 1.0 / max(class_limits.label_gap_s, 1e-6))
        self._label_addresses = Buckets(class_limits.label_address_burst, class_limits.labels_per_address_s)
        self._addresses: OrderedDict[str, str] = OrderedDict()  # identity → the address it last trained from
        self._lock = threading.Lock()

    def check(self, user: User, address: str, action: str, *, shared: bool, teacher_mode: bool) -> None:
        """Return if ``user`` (asking from ``address``) may do ``action``, else raise ``LimitError``.
        ``shared``: roles are in force; ``teacher_mode``: a teacher key is set (a class with a code)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        if action == "teacher":
            if not user.teacher:
                raise limits.LimitError(ONLY_TEACHER)
            return
        if not shared or user.teacher:
            return
        if teacher_mode and not self.roster.joined(user.id):
            raise limits.LimitError(NOT_JOINED)
        if action == "label":
            self._check_label(user, address)
        elif action == "train" and not teacher_mode:
            self._check_training(user, address)

    def _check_label(self, user: User, address: str) -> None:
        lim = self.limits
        if user.anonymous:
            raise limits.LimitError("labels need a browser identity: label from the page, or call /join first (docs/api.md)")
        if user.id in self.roster.removed():
            raise limits.LimitError("the teacher took your labels out of the class's pool: ask them before labelling again")
        from rlhf_demo.data.feedback import FeedbackStore

        tally = FeedbackStore(self.feedback_path()).tally()
        if tally.get(user.id, 0) >= lim.labels_per_identity:
            raise limits.LimitError(f"you have given {lim.labels_per_identity} labels, the most one person may give here: thank you!")
        if sum(tally.values()) >= lim.labels_total:
            raise limits.LimitError(f"the class's label pool is full ({lim.labels_total} labels): the teacher can clear it")
        wait = self._label_ids.take(user.id)
        if wait > 0:
            raise limits.LimitError(f"slow down: one label a second (next in {wait:.1f} s)")
        wait = self._label_addresses.take(address)
        if wait > 0:
            raise limits.LimitError(f"too many labels from your network at once: try again in {wait:.1f} s")

    def _check_training(self, user: User, address: str) -> None:
        from rlhf_demo.training.queue import QUEUE

        with self._lock:
            self._addresses[user.id] = address
            self._addresses.move_to_end(user.id)
            while len(self._addresses) > 20_000:
                self._addresses.popitem(last=False)
            mine = sum(1 for j in QUEUE.waiting() if j.owner != user.id and self._addresses.get(j.owner) == address)
        cap = self.limits.waiting_trainings_per_address
        if mine >= cap:
            raise limits.LimitError(
                f"{mine} trainings from your network are already waiting (at most {cap}): try again when one has started"
            )


def may_act(user: User, record: ClassRecord, folder: Path) -> bool:
    """Stop, delete, or anything only the owner may do: the owner and the teacher."""
    return user.teacher or record.owner(folder).get("owner") == user.id


def may_see(user: User, record: ClassRecord, folder: Path, example_run: Path) -> bool:
    """List, compare, download, load its policy: the owner, the teacher, anyone once it is pinned or shipped."""
    folder = Path(folder)
    if allowlist.path_key(folder) == allowlist.path_key(example_run) or folder.parent == limits.ASSETS:
        return True
    return may_act(user, record, folder) or record.pinned(folder)
