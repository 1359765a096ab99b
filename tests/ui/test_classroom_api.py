"""The classroom's named API on an in-process app in classroom mode (a teacher key), as clients would
use it over HTTP: joining with the class code, labels behind the join with their rate and cap, the
teacher key throttled per address even with spoofed ``X-Forwarded-For``, the right key still accepted
after the class guessed wrong, a labeller removed by the teacher, Gradio's queue refusing a 13th
pending event of one page while another page still gets in, and a page's session freed when it
unloads. The base model is the tiny one (a registry that hands it out, and can hold the model back so
events pile up in Gradio's queue). No browser."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from types import SimpleNamespace

import pytest

from rlhf_demo.classroom import limits

KEY = "teacher-key-3f9c1a7be20d"
CODE = "QX7K2M"


class TinyRegistry:
    """Hands out the tiny model as "default"; ``hold`` makes every caller wait (a slow model)."""

    def __init__(self, bundle):
        self.bundle, self.hold = bundle, threading.Event()
        self.hold.set()

    def get(self, name="default", progress=None):
        self.hold.wait(60)
        return self.bundle


@pytest.fixture(scope="module")
def app(tiny_bundle, tmp_path_factory, close_demo):
    from gradio_client import Client

    from rlhf_demo.classroom.class_limits import ClassLimits
    from rlhf_demo.ui.app import build_demo
    from rlhf_demo.ui.context import AppContext, Sessions

    mp = pytest.MonkeyPatch()
    mp.setenv("RLHF_DEMO_TEACHER_KEY", KEY)
    mp.setenv("RLHF_DEMO_CLASS_CODE", CODE)
    for k in (limits.SHARED_ENV, "FORWARDED_ALLOW_IPS", "RLHF_DEMO_FORWARDED_ALLOW_IPS", "SPACE_ID"):
        mp.delenv(k, raising=False)
    root = tmp_path_factory.mktemp("class-api") / "runs"
    mp.setenv("RLHF_DEMO_FEEDBACK", str(root / "feedback" / "labels.jsonl"))
    lim = ClassLimits(label_burst=1, label_gap_s=1.0, labels_per_identity=2, key_wrong_per_address=10, session_grace_s=0.0)
    ctx = AppContext(runs_dir=root, registry=TinyRegistry(tiny_bundle), sessions=Sessions(), class_limits=lim)
    demo = build_demo(ctx)
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        url = demo.local_url.rstrip("/")
        yield SimpleNamespace(url=url, demo=demo, ctx=ctx, root=root, client=lambda **kw: Client(url, verbose=False, **kw))
    finally:
        ctx.registry.hold.set()
        close_demo(demo)
        mp.undo()


def refused(fn, *args, **kw) -> str:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as exc:
        fn(*args, **kw)
    return str(exc.value)


def test_join_labels_rate_and_cap(app):
    c = app.client()
    assert "join the class first" in refused(c.predict, api_name="/feedback_pair")
    assert "not the class code" in refused(c.predict, "WRONG1", "ann", "", api_name="/join")
    me = json.loads(c.predict(CODE.lower(), "Ann <b>", "", api_name="/join"))
    assert me["nickname"] == "Ann b" and me["token"] and me["user"]
    pair = json.loads(c.predict(api_name="/feedback_pair"))
    assert set(pair) == {"pair_id", "prompt", "a", "b"}
    assert "no pair on your screen" in refused(c.predict, "made-up", "a", api_name="/feedback_label")
    counts = json.loads(c.predict(pair["pair_id"], "a", api_name="/feedback_label"))
    assert counts["you"]["total"] == 1 and counts["class"]["A"] == 1
    assert "no pair on your screen" in refused(c.predict, pair["pair_id"], "b", api_name="/feedback_label")  # once
    pair = json.loads(c.predict(api_name="/feedback_pair"))
    assert "slow down" in refused(c.predict, pair["pair_id"], "b", api_name="/feedback_label")  # 1 a second
    time.sleep(1.1)
    c.predict(pair["pair_id"], "b", api_name="/feedback_label")
    time.sleep(1.1)
    pair = json.loads(c.predict(api_name="/feedback_pair"))
    assert "the most one person" in refused(c.predict, pair["pair_id"], "tie", api_name="/feedback_label")  # 2 each
    again = app.client()  # the token resumes the identity in another client
    assert json.loads(again.predict(CODE, "", me["token"], api_name="/join"))["user"] == me["user"]
    records = [json.loads(x) for x in (app.root / "feedback" / "labels.jsonl").read_text().splitlines()]
    assert [r["labeller"] for r in records] == [me["user"]] * 2
    app.state = me


def test_teacher_key_throttled_per_address_despite_spoofed_forwarded_for(app):
    answers = []
    for i in range(12):  # a fresh anonymous client per guess, each claiming another address
        guesser = app.client(headers={"X-Forwarded-For": f"6.6.6.{i}"})
        answers.append(refused(guesser.predict, "guess", "", api_name="/teacher_login"))
    assert all("not the teacher key" in a for a in answers[:10]), answers
    assert all("too many wrong keys" in a for a in answers[10:]), answers  # all counted at 127.0.0.1
    teacher = app.client()  # the teacher's browser identity: its guess is evaluated all the same
    from rlhf_demo.classroom.identity import new_token

    out = json.loads(teacher.predict(KEY, new_token(), api_name="/teacher_login"))
    assert out["proof"]
    assert teacher.predict(api_name="/teacher_class_code") == CODE
    student = app.client()
    assert "only the teacher" in refused(student.predict, api_name="/teacher_class_code")
    me = getattr(app, "state", None)
    if me is None:
        pytest.skip("needs test_join_labels_rate_and_cap first")
    gone = json.loads(teacher.predict(me["user"], api_name="/teacher_remove_labeller"))
    assert gone == {"labeller": me["user"], "removed": 2}
    assert not (app.root / "feedback" / "labels.jsonl").read_text().strip()
    s = app.client()
    s.predict(CODE, "", me["token"], api_name="/join")
    pair = json.loads(s.predict(api_name="/feedback_pair"))
    assert "took your labels out" in refused(s.predict, pair["pair_id"], "a", api_name="/feedback_label")
    json.loads(teacher.predict(api_name="/teacher_logout"))
    assert "only the teacher" in refused(teacher.predict, api_name="/teacher_class_code")


def _join_queue(app, fn_index: int, session: str) -> int:
    body = json.dumps({"data": [16, 1.0], "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None}).encode()
    req = urllib.request.Request(f"{app.url}/gradio_api/queue/join", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        assert "already has 12 requests waiting" in exc.read().decode()
        return exc.code


def test_one_page_cannot_fill_the_event_queue(app):
    from rlhf_demo.classroom.identity import User

    fn = next(i for i, f in app.demo.fns.items() if f.api_name == "feedback_pair")
    page, other = uuid.uuid4().hex[:11], uuid.uuid4().hex[:11]
    for s, uid in ((page, "u-page"), (other, "u-other")):  # two joined pages (as /join would bind them)
        app.ctx.sessions.bind(s, User(uid, uid))
        app.ctx.roster.rejoin(uid, uid)
    app.ctx.registry.hold.clear()  # the model is slow: events stay pending
    try:
        codes = [_join_queue(app, fn, page) for _ in range(15)]
        assert codes == [200] * 12 + [503] * 3, codes
        assert _join_queue(app, fn, other) == 200  # another page still gets in
    finally:
        app.ctx.registry.hold.set()


def test_a_page_that_unloads_frees_its_session(app):
    c = app.client()
    c.predict(CODE, "leaver", "", api_name="/join")
    sh = c.session_hash
    assert sh in app.ctx.sessions._users and sh in app.demo.state_holder
    host = urllib.parse.urlsplit(app.url)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=10)
    conn.request("GET", f"/gradio_api/heartbeat/{sh}")
    resp = conn.getresponse()
    resp.read(5)  # the heartbeat is open: the page is there
    conn.close()  # the tab closes
    t0 = time.monotonic()
    while sh in app.ctx.sessions._users or sh in app.demo.state_holder:
        assert time.monotonic() - t0 < 30, "the session was never freed"
        time.sleep(0.1)
