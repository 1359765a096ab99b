"""Who is who on a shared server: an anonymous id per browser, a nickname, and the teacher role.

A browser keeps a random **token** (``new_token``) in its local storage; the server never shows it and
never stores it: runs and labels carry the **user id**, a hash of the token (``user_id``), so knowing a
run's owner id does not let anyone act as its owner. A client that sends no token (the HTTP API, a
page that has not said who it is yet) is its own anonymous user, keyed by its Gradio session.

The teacher role is unlocked by ``RLHF_DEMO_TEACHER_KEY`` (typed once per browser: the page then keeps
``teacher_proof(token)``, an HMAC of the token under the key, which only the server can make or check,
so it survives reloads and restarts and is worthless in another browser) or by a Hugging Face username
listed in ``RLHF_DEMO_TEACHERS`` (Spaces with ``hf_oauth: true``). Wrong keys meet a growing delay
per identity and a budget per address (``classroom.key_guard``). Local use (not shared, no key) has no roles: the one person is owner and teacher.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass

TEACHER_KEY_ENV = "RLHF_DEMO_TEACHER_KEY"
TEACHERS_ENV = "RLHF_DEMO_TEACHERS"
MAX_NICK = 24
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{20,64}")
_ADJ = ("calm", "brave", "quick", "bright", "kind", "clever", "sunny", "quiet", "bold", "merry", "keen", "witty")
_ANIMAL = ("otter", "heron", "lynx", "panda", "falcon", "koala", "badger", "gecko", "puffin", "marmot", "ibis", "yak")


@dataclass(frozen=True)
class User:
    id: str  # public: hash of the browser's token (or of the API session); shown nowhere but files
    nickname: str
    teacher: bool = False
    anonymous: bool = False  # no browser token: an API client or a page that has not identified yet


def new_token() -> str:
    return secrets.token_urlsafe(24)


def valid_token(token) -> bool:
    return isinstance(token, str) and bool(TOKEN_RE.fullmatch(token))


def user_id(token: str) -> str:
    """The public id of a browser token: 16 hex characters of SHA-256 (one-way)."""
    return hashlib.sha256(b"rlhf-lab-user:" + token.encode()).hexdigest()[:16]


def session_user_id(session_hash: str) -> str:
    """The id of a client that sent no token: its Gradio session (a new one per API client)."""
    return hashlib.sha256(b"rlhf-lab-session:" + (session_hash or "none").encode()).hexdigest()[:16]


def default_nickname(uid: str) -> str:
    n = int(uid[:8], 16)
    return f"{_ADJ[n % len(_ADJ)]}-{_ANIMAL[(n // 97) % len(_ANIMAL)]}-{uid[-2:]}"


def clean_nickname(text, fallback: str) -> str:
    """A nickname safe to show to everyone: letters, digits, spaces and ``-_.'`` only, at most
    ``MAX_NICK`` characters; anything else is dropped (so no HTML or Markdown reaches other pages)."""
    if not isinstance(text, str):
        return fallback
    text = unicodedata.normalize("NFKC", text)
    kept = "".join(ch for ch in text if ch.isalnum() or ch in " -_.'")
    kept = " ".join(kept.split())[:MAX_NICK].strip()
    return kept or fallback


def teacher_key() -> str:
    return os.environ.get(TEACHER_KEY_ENV, "")


def teacher_usernames() -> set[str]:
    return {u.strip().lower() for u in os.environ.get(TEACHERS_ENV, "").split(",") if u.strip()}


def teacher_proof(token: str, key: str | None = None) -> str:
    """HMAC-SHA256 of the token under the teacher key ('' when no key is set)."""
    key = teacher_key() if key is None else key
    if not key:
        return ""
    return hmac.new(key.encode(), b"rlhf-lab-teacher:" + token.encode(), hashlib.sha256).hexdigest()


def check_proof(token: str, proof, key: str | None = None) -> bool:
    want = teacher_proof(token, key)
    return bool(want) and isinstance(proof, str) and hmac.compare_digest(want, proof)


def key_matches(typed, key: str | None = None) -> bool:
    key = teacher_key() if key is None else key
    return bool(key) and isinstance(typed, str) and hmac.compare_digest(key.encode(), typed.encode())


def browser_secret(runs_dir) -> str:
    """The key the page's local storage is encrypted with: the same across restarts (a reload after a
    restart keeps its identity), made once into ``RUNS/.class/browser-secret``."""
    from pathlib import Path

    env = os.environ.get("RLHF_DEMO_BROWSER_SECRET")
    if env:
        return env
    path = Path(runs_dir) / ".class" / "browser-secret"
    try:
        return path.read_text().strip() or _make_secret(path)
    except OSError:
        return _make_secret(path)


def _make_secret(path) -> str:
    return write_once(path, secrets.token_urlsafe(24))


def write_once(path, value: str) -> str:
    """``value`` written to ``path`` (mode 0600) unless the file already exists; returns what the file holds
    then (a racing writer's value wins), or ``value`` if the disk refuses."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value)
    except FileExistsError:
        return path.read_text().strip() or value
    except OSError:
        pass
    return value
