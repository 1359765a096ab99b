"""What a person does to the class, one function each, shared by the page (identity bar, Teacher tab)
and the named API (``ui.api_classroom``), so both pass exactly the same checks: joining with the class
code, the teacher key in and out, pins, removing a labeller, the class code itself, the question the Feedback tab asks,
the class challenge.

Each takes the ``AppContext`` and the Gradio request, binds or checks the session's user
(``AppContext.sessions``) and returns plain data; a refusal is ``limits.LimitError`` with one line.
No layout; nothing here relies on an event being private.
"""

from __future__ import annotations

from pathlib import Path

from rlhf_demo.classroom import allowlist, limits
from rlhf_demo.classroom.address import client_address
from rlhf_demo.classroom.challenge import Challenge, check_challenge, measure_base
from rlhf_demo.classroom.identity import (
    User,
    browser_secret,
    check_proof,
    clean_nickname,
    default_nickname,
    key_matches,
    new_token,
    teacher_key,
    teacher_proof,
    user_id,
    valid_token,
)
from rlhf_demo.classroom.roster import (
    RosterError,
    check_join_proof,
    class_code,
    feedback_question,
    join_proof,
    set_class_challenge,
    set_feedback_question,
)
from rlhf_demo.ui import labelling
from rlhf_demo.ui.context import AppContext, session_of
from rlhf_demo.ui.labelling import store

BAD_TOKEN = "token: pass '' for a new identity, or the token /join gave you"


def _refuse(exc: Exception):
    raise limits.LimitError(str(exc)) from exc


def code(ctx: AppContext) -> str:
    return class_code(ctx.runs_dir)


def proof_of_join(ctx: AppContext, token: str) -> str:
    return join_proof(token, code(ctx), browser_secret(ctx.runs_dir)) if ctx.teacher_mode() else ""


def identify(ctx: AppContext, request, token, nickname, proof="", joined_proof="", username: str = "") -> User:
    """Bind this session to the browser identity ``token`` (a page load): admitted (a new one counts against
    its address), a member again when ``joined_proof`` proves an earlier join, the teacher when ``proof``
    is the teacher proof (or ``username`` is listed in RLHF_DEMO_TEACHERS)."""
    uid = user_id(token)
    nick = clean_nickname(nickname, default_nickname(uid))
    try:
        ctx.roster.admit(uid, client_address(request))
    except RosterError as exc:
        _refuse(exc)
    from rlhf_demo.classroom.identity import teacher_usernames

    teacher = check_proof(token, proof) or (bool(username) and username.lower() in teacher_usernames())
    if ctx.teacher_mode() and check_join_proof(token, joined_proof, code(ctx), browser_secret(ctx.runs_dir)):
        ctx.roster.rejoin(uid, nick)
    user = User(uid, nick, teacher=teacher)
    ctx.sessions.bind(session_of(request), user)
    ctx.sessions.sweep()
    return user


def joined(ctx: AppContext, user: User) -> bool:
    """Whether ``user`` may act without joining (no class code in force, the teacher) or has joined."""
    return not ctx.teacher_mode() or user.teacher or ctx.roster.joined(user.id)


def join(ctx: AppContext, request, class_code_typed, nickname, token) -> dict:
    """Join the class as the identity ``token`` ('' = a new one) with the class code (ignored where no
    teacher key is set: there it only gives the client a browser identity). Binds this session to it.
    Returns {"user", "nickname", "token", "proof"} (``proof``: what a page keeps to stay joined)."""
    if token in (None, ""):
        token = new_token()
    if not valid_token(token):
        raise limits.LimitError(BAD_TOKEN)
    uid = user_id(token)
    nick = clean_nickname(nickname, default_nickname(uid))
    address = client_address(request)
    try:
        if ctx.teacher_mode():
            ctx.roster.join(uid, nick, class_code_typed, code(ctx), address)
        else:
            ctx.roster.admit(uid, address)
    except RosterError as exc:
        _refuse(exc)
    current = ctx.sessions.get(session_of(request))
    teacher = bool(current and current.id == uid and current.teacher)
    ctx.sessions.bind(session_of(request), User(uid, nick, teacher=teacher))
    labelling.warm(ctx)  # the class will label soon: pairs are drawn ahead (data/pair_pool.py)
    return {"user": uid, "nickname": nick, "token": token, "proof": proof_of_join(ctx, token)}


def rename(ctx: AppContext, request, nickname) -> User:
    """Change this session's nickname (``gate(request, "name")``: joined in classroom mode)."""
    if not isinstance(nickname, str) or not nickname.strip():
        raise limits.LimitError("type a nickname first")
    user = ctx.gate(request, "name")
    if user.anonymous:
        raise limits.LimitError("a nickname needs a browser identity: call /join first (docs/api.md)")
    new = User(user.id, clean_nickname(nickname, user.nickname), teacher=user.teacher)
    ctx.sessions.bind(session_of(request), new)
    if ctx.roster.joined(user.id):
        ctx.roster.rejoin(user.id, new.nickname)
    return new


def teacher_login(ctx: AppContext, request, key, token=None) -> dict:
    """Unlock teacher mode for this session with the teacher key. ``token``: the browser identity to
    unlock (the page's; an API client's from /join), None/'' = this session's user. Throttled per
    identity and per address (``classroom.key_guard``). Returns {"user", "proof"} (``proof``: what a
    page keeps to stay the teacher after a reload; '' for an anonymous client)."""
    if not teacher_key():
        raise limits.LimitError("there is no teacher key on this server (set RLHF_DEMO_TEACHER_KEY)")
    session = session_of(request)
    current = ctx.user(request)
    if token not in (None, ""):
        if not valid_token(token):
            raise limits.LimitError(BAD_TOKEN)
        if current.anonymous or current.id != user_id(token):
            identify(ctx, request, token, current.nickname if not current.anonymous else None)
            current = ctx.user(request)
    address = client_address(request)
    wait = ctx.guard.wait_s(current.id, address, anonymous=current.anonymous)
    if wait > 0:
        raise limits.LimitError(f"too many wrong keys: try again in {wait:.0f} s")
    if not key_matches(key):
        delay = ctx.guard.failed(current.id, address)
        raise limits.LimitError(f"that is not the teacher key: next try in {delay:.0f} s")
    ctx.guard.succeeded(current.id)
    ctx.sessions.bind(session, User(current.id, current.nickname, teacher=True, anonymous=current.anonymous))
    return {"user": current.id, "proof": teacher_proof(token) if token else ""}


def teacher_logout(ctx: AppContext, request) -> dict:
    """Leave teacher mode in this session (a shared lab PC); the page also forgets its proof."""
    u = ctx.user(request)
    ctx.sessions.bind(session_of(request), User(u.id, u.nickname, teacher=False, anonymous=u.anonymous))
    return {"user": u.id, "teacher": False}


def run_folder(ctx: AppContext, name) -> Path:
    folder = Path(ctx.runs_dir) / str(name)
    if not isinstance(name, str) or not ctx.record.inside(folder) or not (folder / "config.json").exists():
        raise limits.LimitError(f"{str(name)[:80]!r}: not a run of this server")
    return folder


def pin(ctx: AppContext, request, run, pinned: bool) -> dict:
    """Pin a run for the class (every student then sees it) or unpin it: the teacher only."""
    ctx.gate(request, "teacher")
    folder = run_folder(ctx, run)
    ctx.record.pin(folder, bool(pinned))
    return {"run": folder.name, "pinned": bool(pinned)}


def labeller_id(ctx: AppContext, labeller) -> str:
    """A labeller's id from their id or their nickname (one labeller only)."""
    tally = store(ctx).tally()
    if isinstance(labeller, str) and labeller in tally:
        return labeller
    names = {}
    for r in store(ctx).records():
        if isinstance(labeller, str) and r.get("nickname") == labeller:
            names[r["labeller"]] = True
    if len(names) == 1:
        return next(iter(names))
    raise limits.LimitError(
        f"{str(labeller)[:40]!r}: no labeller by that id or nickname" + (" (several have it: use the id)" if names else "")
    )


def remove_labeller(ctx: AppContext, request, labeller) -> dict:
    """Take a labeller and their labels out of the class's pool (kept in a file beside it); they may not
    label again. The teacher only. Returns {"labeller", "removed"} (labels taken out)."""
    ctx.gate(request, "teacher")
    uid = labeller_id(ctx, labeller)
    ctx.roster.remove(uid)
    return {"labeller": uid, "removed": store(ctx).remove_labeller(uid)}


def teacher_class_code(ctx: AppContext, request) -> str:
    ctx.gate(request, "teacher")
    if not ctx.teacher_mode():
        raise limits.LimitError("there is no class code without a teacher key (RLHF_DEMO_TEACHER_KEY)")
    return code(ctx)


def question(ctx: AppContext) -> str:
    """The question the Feedback tab asks (``roster.feedback_question``)."""
    return feedback_question(ctx.runs_dir)


def set_question(ctx: AppContext, request, text) -> str:
    """Set the question the Feedback tab asks the class (blank: the default): the teacher only.
    Returns the question now in force."""
    ctx.gate(request, "teacher")
    try:
        return set_feedback_question(ctx.runs_dir, text)
    except RosterError as exc:
        _refuse(exc)


def set_challenge(ctx: AppContext, request, reward, kl_budget) -> dict:
    """Set the class challenge (the teacher only): ``reward`` a builder spec the server may build
    (``allowlist.check_reward``), ``kl_budget`` in nats; the base model's held-out reward under it is
    measured once here (``challenge.measure_base``, a few seconds). A blank ``reward`` ends the
    challenge. Returns {"reward", "kl_budget", "base_reward"} (None values once ended)."""
    ctx.gate(request, "teacher")
    if reward is None or (isinstance(reward, str) and not reward.strip()):
        set_class_challenge(ctx.runs_dir, None)
        return {"reward": None, "kl_budget": None, "base_reward": None}
    try:
        spec, budget = check_challenge(allowlist.check_reward(reward, ctx.session_limits(request)), kl_budget)
    except ValueError as exc:
        _refuse(exc)
    bundle = ctx.model(None, request)
    try:
        now = set_class_challenge(ctx.runs_dir, Challenge(spec, budget, measure_base(bundle.model, bundle.tokenizer, spec)))
    except RosterError as exc:
        _refuse(exc)
    return {"reward": now.reward, "kl_budget": now.kl_budget, "base_reward": now.base_reward}
