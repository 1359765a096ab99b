"""Who is in the class: the class code, who joined with it, which identities exist, whom the teacher
removed from the label pool.

**Class code** (classroom mode: a teacher key is set): ``RLHF_DEMO_CLASS_CODE``, else six characters
made once into ``RUNS/.class/class-code`` (no 0/O or 1/I: read aloud, typed by 30 people). The teacher
shows it; training, labelling and naming need an identity that joined with it.

**Joining** is remembered twice: server-side here (``joined``), and in the browser as ``join_proof`` — an
HMAC of the browser's token and the code under the server's secret (like the teacher proof), so a
reload or a restart keeps it, a new code (a new lesson) asks again, and it is worthless in another browser.

**Identities are not free**: a browser identity the server has not seen before is created through
``admit`` (page load) or ``join`` (API and page), at most ``new_identities_per_address`` per window per
address, so one client cannot mint hundreds (each identity gets a few teacher-key guesses of its own,
``classroom.key_guard``, and labels of its own). Wrong class codes spend a per-address budget too.

**Removed labellers** (``RUNS/.class/removed.json``, survives restarts): their labels left the pool
(``data.feedback.FeedbackStore.remove_labeller``) and they may not label again.

**The class's settings** (``RUNS/.class/settings.json``, survives restarts), which the teacher sets for
the class: the question the Feedback tab asks (``feedback_question``) and the class challenge
(``class_challenge``: a reward spec and a KL budget, ``classroom.challenge``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

from rlhf_demo.classroom.challenge import Challenge, check_challenge
from rlhf_demo.classroom.class_limits import ClassLimits
from rlhf_demo.classroom.identity import write_once
from rlhf_demo.classroom.rate import Buckets

CLASS_CODE_ENV = "RLHF_DEMO_CLASS_CODE"
DEFAULT_QUESTION = "Which continuation is more positive about the film?"
"""What the Feedback tab asks until the teacher sets another question (the reward the course trains for)."""
MAX_QUESTION = 160
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
MAX_KNOWN = 50_000


class RosterError(ValueError):
    """A join or an identity refused; the message is one line for the user."""


def normalise_code(text) -> str:
    return "".join(ch for ch in str(text or "").upper() if ch.isalnum())[:32]


def class_code(runs_dir) -> str:
    """The class code in force: ``RLHF_DEMO_CLASS_CODE`` or the one made once for this runs folder."""
    env = normalise_code(os.environ.get(CLASS_CODE_ENV, ""))
    if env:
        return env
    path = Path(runs_dir) / ".class" / "class-code"
    try:
        code = normalise_code(path.read_text())
        if code:
            return code
    except OSError:
        pass
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(6))
    return normalise_code(write_once(path, code)) or code


def code_matches(typed, code: str) -> bool:
    typed = normalise_code(typed)
    return bool(code) and bool(typed) and hmac.compare_digest(typed.encode(), code.encode())


def join_proof(token: str, code: str, secret: str) -> str:
    """HMAC-SHA256 of the browser's token and the class code under the server's secret."""
    return hmac.new(secret.encode(), f"rlhf-lab-join:{code}:{token}".encode(), hashlib.sha256).hexdigest()


def check_join_proof(token: str, proof, code: str, secret: str) -> bool:
    return bool(code) and isinstance(proof, str) and hmac.compare_digest(join_proof(token, code, secret), proof)


class Roster:
    """Known identities, who joined the class, whom the teacher removed; thread-safe, bounded."""

    def __init__(self, runs_dir, limits: ClassLimits | None = None):
        self.runs_dir = Path(runs_dir)
        self.limits = lim = limits or ClassLimits()
        self._lock = threading.Lock()
        self._known: OrderedDict[str, float] = OrderedDict()  # identity → first seen
        self._joined: OrderedDict[str, dict] = OrderedDict()  # identity → {"nickname", "time"}
        per_s = lim.new_identities_per_address / lim.identity_window_s
        self._new = Buckets(lim.new_identities_per_address, per_s)
        self._wrong = Buckets(lim.wrong_codes_per_address, lim.wrong_codes_per_address / lim.identity_window_s)

    # ------------------------------------------------------------------ identities
    def known(self, uid: str) -> bool:
        with self._lock:
            return uid in self._known

    def admit(self, uid: str, address: str) -> None:
        """Accept a browser identity: free when seen before, else one of the address's new identities."""
        with self._lock:
            if uid in self._known:
                self._known.move_to_end(uid)
                return
        wait = self._new.take(address)
        if wait > 0:
            raise RosterError(
                f"too many new visitors from your network: try again in {wait / 60:.0f} min (or reuse the browser you came with)"
            )
        with self._lock:
            self._known[uid] = time.time()
            while len(self._known) > MAX_KNOWN:
                self._known.popitem(last=False)

    # ------------------------------------------------------------------ joining
    def joined(self, uid: str) -> bool:
        with self._lock:
            return uid in self._joined

    def members(self) -> dict[str, dict]:
        with self._lock:
            return dict(self._joined)

    def rejoin(self, uid: str, nickname: str) -> None:
        """An identity that proved an earlier join (its browser's ``join_proof``): a member again, free."""
        with self._lock:
            self._known.setdefault(uid, time.time())
            self._joined[uid] = {"nickname": nickname, "time": time.time()}
            self._joined.move_to_end(uid)
            while len(self._joined) > MAX_KNOWN:
                self._joined.popitem(last=False)

    def join(self, uid: str, nickname: str, typed_code, code: str, address: str) -> None:
        """Join with ``typed_code``; RosterError when it is wrong (a budget per address) or the address made
        too many identities."""
        wait = self._wrong.wait_s(address)
        if wait > 0:
            raise RosterError(f"too many wrong class codes from your network: try again in {wait:.0f} s")
        if not code_matches(typed_code, code):
            self._wrong.spend(address)
            raise RosterError("that is not the class code: ask your teacher for the code on their screen")
        self.admit(uid, address)
        self.rejoin(uid, nickname)

    # ------------------------------------------------------------------ removed labellers
    @property
    def _removed_path(self) -> Path:
        return self.runs_dir / ".class" / "removed.json"

    def removed(self) -> set[str]:
        try:
            data = json.loads(self._removed_path.read_text())
        except (OSError, json.JSONDecodeError):
            return set()
        return {u for u in data if isinstance(u, str)} if isinstance(data, list) else set()

    def remove(self, uid: str) -> None:
        with self._lock:
            ids = sorted(self.removed() | {uid})
            path = self._removed_path
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(ids))
            tmp.replace(path)


# ---------------------------------------------------------------------- the class's settings
def _settings_path(runs_dir) -> Path:
    return Path(runs_dir) / ".class" / "settings.json"


def class_settings(runs_dir) -> dict:
    """The class's settings: ``{"question": ..., "challenge": dict or None}`` (defaults for what was never
    set or cannot be read)."""
    try:
        data = json.loads(_settings_path(runs_dir).read_text())
    except (OSError, json.JSONDecodeError):
        data = {}
    data = data if isinstance(data, dict) else {}
    question = data.get("question")
    challenge = Challenge.from_dict(data.get("challenge"))
    return {
        "question": question if isinstance(question, str) and question.strip() else DEFAULT_QUESTION,
        "challenge": challenge.to_dict() if challenge else None,
    }


def _write_settings(runs_dir, **changes) -> None:
    """Write the class's settings with ``changes`` (atomically: a reader sees the old file or the new)."""
    path = _settings_path(runs_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps({**class_settings(runs_dir), **changes}))
    tmp.replace(path)


def feedback_question(runs_dir) -> str:
    """The question the Feedback tab asks the class."""
    return class_settings(runs_dir)["question"]


def set_feedback_question(runs_dir, text) -> str:
    """Set the Feedback tab's question for the class (blank: back to ``DEFAULT_QUESTION``); one line of
    at most ``MAX_QUESTION`` characters, else RosterError. Returns the question now in force."""
    if not isinstance(text, str):
        raise RosterError("the question must be text")
    question = " ".join(text.split())
    if len(question) > MAX_QUESTION:
        raise RosterError(f"the question is {len(question)} characters long; keep it under {MAX_QUESTION}")
    if any(not ch.isprintable() for ch in question):
        raise RosterError("the question holds characters that cannot be shown")
    _write_settings(runs_dir, question=question or DEFAULT_QUESTION)
    return feedback_question(runs_dir)


def class_challenge(runs_dir) -> Challenge | None:
    """The class challenge in force (None: none set)."""
    return Challenge.from_dict(class_settings(runs_dir)["challenge"])


def set_class_challenge(runs_dir, challenge: Challenge | None) -> Challenge | None:
    """Set the class challenge (None: end it); its spec and budget are checked again
    (``challenge.check_challenge``: RosterError in one line). Returns the challenge now in force."""
    if challenge is not None:
        try:
            reward, budget = check_challenge(challenge.reward, challenge.kl_budget)
        except ValueError as exc:
            raise RosterError(str(exc)) from exc
        challenge = replace(challenge, reward=reward, kl_budget=budget)
    _write_settings(runs_dir, challenge=None if challenge is None else challenge.to_dict())
    return class_challenge(runs_dir)
