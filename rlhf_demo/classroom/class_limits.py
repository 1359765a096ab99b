"""The numbers that keep one class (or the internet) from blocking or faking the class: each one a
field here, each overridable by ``RLHF_DEMO_<FIELD NAME IN CAPITALS>`` (e.g. ``RLHF_DEMO_LABELS_TOTAL``).

The defaults are sized for a class of 30 behind one school address (the lesson benchmark runs
everyone from 127.0.0.1): per-address numbers let a whole class through, per-session and per-identity
numbers stop one client. Where a number comes from is said beside it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class ClassLimits:
    # ---- Gradio's event queue (``ui.event_limits``): events of one page / one address waiting or running
    pending_per_session: int = 12
    """A page fires about ten events at once when it learns who it is (8 listeners on ``who``, 3 loads)."""
    pending_per_address: int = 256
    """30 pages loading at the same moment, with room; one abuser with many sessions stops here."""
    queue_size: int = 1024
    """Gradio's own cap over everyone (``demo.queue(max_size=…)``): well above one address's share."""
    # ---- live sessions (``ui.context.Sessions``)
    max_sessions: int = 300
    """Pages (and API clients) whose state is kept; the least recently active are dropped first."""
    session_grace_s: float = 60.0
    """A page that closed is freed this long after (a heartbeat that reconnects keeps its session)."""
    # ---- identities (``classroom.roster``)
    new_identities_per_address: int = 120
    """New browser identities one address may create per ``identity_window_s`` (a class of 30, each maybe twice)."""
    identity_window_s: float = 600.0
    wrong_codes_per_address: int = 30
    """Wrong class codes one address may send per ``identity_window_s`` (typos of a whole class)."""
    # ---- labels (``ui.labelling``)
    label_gap_s: float = 1.0
    """One label per second per identity on average …"""
    label_burst: int = 5
    """… with a few quick ones allowed (a double tap, a run of obvious pairs)."""
    labels_per_address_s: float = 20.0
    """A class of 30 labels about one pair every 3 s each: 10 a second."""
    label_address_burst: int = 100
    labels_per_identity: int = 200
    labels_total: int = 10_000
    # ---- trainings on a public server without a teacher
    waiting_trainings_per_address: int = 3
    """Trainings of one address waiting in the queue (the queue itself allows one per identity)."""
    # ---- the teacher key (``classroom.key_guard``)
    key_free_wrong: int = 3
    """Wrong keys an identity may send before the address's budget applies to it as well."""
    key_wrong_per_address: int = 10
    """Wrong keys from identities past their free ones (and from anonymous clients), per address, per ``key_window_s``."""
    key_window_s: float = 600.0

    @classmethod
    def from_env(cls) -> ClassLimits:
        kw = {}
        for f in fields(cls):
            raw = os.environ.get("RLHF_DEMO_" + f.name.upper())
            if raw is None or not raw.strip():
                continue
            try:
                value = (int if f.type in ("int", int) else float)(raw)
            except ValueError:
                raise ValueError(f"RLHF_DEMO_{f.name.upper()} must be a number, got {raw!r}") from None
            if value < 0:
                raise ValueError(f"RLHF_DEMO_{f.name.upper()} must be ≥ 0, got {raw!r}")
            kw[f.name] = value
        return cls(**kw)


def pending_refusal(pending, session: str, address: str, lim: ClassLimits) -> str:
    """'' when one more event of ``session`` from ``address`` may join Gradio's queue, else the one-line
    reason. ``pending``: (session, address) of every event the queue holds (waiting or running)."""
    n_session = n_address = 0
    for s, a in pending:
        n_session += s == session
        n_address += a == address
    if session and n_session >= lim.pending_per_session:
        return f"this page already has {n_session} requests waiting: wait for them to finish (at most {lim.pending_per_session} at a time)"
    if n_address >= lim.pending_per_address:
        return (
            f"your network already has {n_address} requests waiting on this server: try again in a moment "
            f"(at most {lim.pending_per_address} at a time)"
        )
    return ""
