"""Classroom mode in headless Chromium with three browsers at once — two students (A, B) and a teacher —
on one server with a teacher key (RLHF_DEMO_TEACHER_KEY, hence shared mode), on the real default model:

0. students join with the class code (RLHF_DEMO_CLASS_CODE) before they may train, label or rename;
1. the teacher key: a wrong key is refused with a growing delay and never reaches the page; the right
   one unlocks the Teacher tab (which shows the class code and which a student never sees); "Leave
   teacher mode" turns it off in that browser, across a reload;
2. A starts a PPO run; B watches it live from the Training tab (whose run, its curves); B cannot stop
   it through the HTTP API; the teacher stops it from the Teacher tab;
3. A's run is invisible to B — in the page and through the HTTP API (compare, download, CSV with A's
   run name) — until the teacher pins it; then B sees it;
4. labels from A and B reach the class count and the teacher's panel.
Screenshots of a student's and the teacher's views during the live run go to /tmp/shots/.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from rlhf_demo.classroom import limits
from rlhf_demo.training.queue import QUEUE

KEY = "class-key-7f3a"
CODE = "K7M2QX"
SHOTS = Path("/tmp/shots")
pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory, close_demo):
    from rlhf_demo.ui.app import build_demo
    from rlhf_demo.ui.context import AppContext

    mp = pytest.MonkeyPatch()
    mp.setenv("RLHF_DEMO_TEACHER_KEY", KEY)
    mp.setenv("RLHF_DEMO_CLASS_CODE", CODE)
    for k in (limits.SHARED_ENV, limits.MODELS_ENV, limits.MAX_TRAIN_S_ENV):
        mp.delenv(k, raising=False)
    root = tmp_path_factory.mktemp("classroom") / "runs"
    mp.setenv("RLHF_DEMO_FEEDBACK", str(root / "feedback" / "labels.jsonl"))
    assert limits.current().shared  # a teacher key means a class's server
    ctx = AppContext(runs_dir=root)
    demo = build_demo(ctx)
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        yield SimpleNamespace(url=demo.local_url.rstrip("/"), ctx=ctx, root=root, state={})
    finally:
        close_demo(demo)
        mp.undo()


@pytest.fixture(scope="module")
def people(browser, server):
    """Three browsers (separate local storage: separate people), each on the app."""
    out = {}
    for who in ("a", "b", "teacher"):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(server.url)
        page.wait_for_function("() => (document.querySelector('#who')?.innerText || '').includes('You are')", timeout=60_000)
        if who != "teacher":  # students join with the class code the teacher shows
            page.locator("#who-code input, #who-code textarea").first.fill(CODE.lower())
            page.locator("#who-join").click()
            page.locator("#who-join").wait_for(state="hidden", timeout=30_000)
        out[who] = page
    yield SimpleNamespace(**out)
    for page in out.values():
        page.context.close()


def _text(page, elem_id) -> str:
    return page.locator(f"#{elem_id}").inner_text()


def _fill(page, elem_id, value):
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(str(value))
    box.press("Tab")


def _wait_text(page, elem_id, needle, timeout=60_000):
    try:
        page.wait_for_function(
            "([id, s]) => (document.querySelector('#' + id)?.innerText || '').includes(s)", arg=[elem_id, needle], timeout=timeout
        )
    except Exception:
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / f"classroom-failed-{elem_id}.png"), full_page=True)
        raise AssertionError(f"#{elem_id} never showed {needle!r}: {page.locator('#' + elem_id).inner_text()[:300]!r}") from None


def _rename(page, name):
    from rlhf_demo.classroom.identity import clean_nickname

    page.get_by_text("Your name", exact=True).click()
    page.locator("#who-nick input, #who-nick textarea").first.wait_for()
    for _ in range(3):  # a fill racing the page's first render can be lost: type it again
        _fill(page, "who-nick", name)
        page.locator("#who-rename").click()
        try:
            page.wait_for_function(
                "(s) => (document.querySelector('#who')?.innerText || '').includes(s)", arg=clean_nickname(name, ""), timeout=10_000
            )
            return
        except Exception:
            continue


def test_teacher_key_refused_with_a_growing_delay_then_unlocks_the_teacher_tab(people):
    t, a = people.teacher, people.a
    assert a.get_by_role("tab", name="Teacher").count() == 0  # students never see the tab
    assert not a.locator("#who-key").is_visible()  # nor the key field: it is behind the closed "I'm the teacher"
    t.get_by_text("I'm the teacher").click()
    _fill(t, "who-key", "guess")
    t.locator("#who-unlock").click()
    _wait_text(t, "who-key-msg", "not the teacher key")
    assert "next try in 2 s" in _text(t, "who-key-msg")
    _fill(t, "who-key", KEY)  # at once: still refused, even the right key
    t.locator("#who-unlock").click()
    _wait_text(t, "who-key-msg", "Too many wrong keys")
    time.sleep(2.2)
    _fill(t, "who-key", KEY)
    t.locator("#who-unlock").click()
    _wait_text(t, "who-key-msg", "Teacher mode on")
    t.get_by_role("tab", name="Teacher").wait_for(timeout=20_000)
    assert KEY not in t.content()  # the key is not left in the page
    t.get_by_role("tab", name="Teacher").wait_for(timeout=20_000)
    t.reload()  # typed once per browser
    _wait_text(t, "who", "teacher")
    t.get_by_role("tab", name="Teacher").wait_for(timeout=20_000)
    assert "teacher" not in _text(a, "who")
    t.get_by_role("tab", name="Teacher").click()
    _wait_text(t, "teacher-code", CODE)  # the code students join with
    t.get_by_text("I'm the teacher").click()  # (closed again by the reload)
    t.locator("#who-leave").click()  # a shared lab PC: teacher mode off again
    _wait_text(t, "who-key-msg", "Teacher mode is off")
    t.reload()
    _wait_text(t, "who", "You are")
    assert "teacher" not in _text(t, "who")
    t.get_by_text("I'm the teacher").click()
    _fill(t, "who-key", KEY)
    t.locator("#who-unlock").click()
    _wait_text(t, "who-key-msg", "Teacher mode on")
    t.get_by_role("tab", name="Teacher").wait_for(timeout=20_000)


def test_a_run_trains_live_on_every_screen_and_only_owner_or_teacher_stops_it(people, server):
    from gradio_client import Client

    a, b, t = people.a, people.b, people.teacher
    _rename(a, "<b>Ann</b><img src=x>")
    _wait_text(a, "who", "bAnnbimg srcx")
    a.get_by_role("tab", name="Training").click()
    _fill(a, "ppo-steps", 200)
    a.locator("#training-panel-ppo").get_by_text("Optimisation", exact=True).first.click()
    _fill(a, "ppo-batch-size", 8)  # the preset's 32 episodes an update: 4× longer to the first curve point
    a.locator("#ppo-start").click()
    b.get_by_role("tab", name="Training").click()
    _wait_text(b, "live-status", "Training now", timeout=120_000)
    assert "bAnnbimg srcx" in _text(b, "live-status")  # whose run: as plain text
    assert b.locator("#live-status img, #live-status b").count() == 0
    b.wait_for_function(
        "() => document.querySelectorAll('#live-plot .scatterlayer .trace').length > 0", timeout=180_000
    )  # B sees A's curves, live
    run = b.locator("#live-run input, #live-run textarea").first.input_value()
    assert run.startswith("ppo-") and (server.root / run).is_dir()
    server.state["run"] = run
    SHOTS.mkdir(exist_ok=True)
    b.screenshot(path=str(SHOTS / "classroom-student-watching.png"), full_page=True)

    outsider = Client(server.url, verbose=False)  # B's twin through the HTTP API
    with pytest.raises(Exception, match="that you may stop"):
        outsider.predict(run, api_name="/stop_run")
    b.locator("#live-stop").click()  # nor from B's page: an error toast
    b.get_by_text("that you may stop").first.wait_for(timeout=20_000)
    job = next(j for j in QUEUE.jobs() if j.out.name == run)
    assert not job.done and not job.stop_event.is_set()

    t.get_by_role("tab", name="Teacher").click()
    t.locator("#teacher-refresh").click()
    _wait_text(t, "teacher-queue", "bAnnbimg srcx")
    _wait_text(t, "teacher-runs", run)
    t.screenshot(path=str(SHOTS / "classroom-teacher-panel.png"), full_page=True)
    t.locator("#teacher-remove").click()
    _wait_text(t, "teacher-msg", "stopping after the current step")
    t.locator("#teacher-remove").click()  # a second Stop: no held-out evaluation of the stopped policy
    _wait_text(t, "teacher-msg", "without the held-out evaluation")
    _wait_text(b, "live-status", "Last run", timeout=180_000)
    assert "stopped" in _text(b, "live-status")
    assert json.loads((server.root / run / "summary.json").read_text())["status"] == "stopped"


def test_a_students_run_is_invisible_to_another_until_the_teacher_pins_it(people, server):
    from gradio_client import Client

    a, b, t = people.a, people.b, people.teacher
    run = server.state["run"]
    b.get_by_role("tab", name="Runs").click()
    b.locator("#runs-refresh").click()
    b.wait_for_timeout(1500)
    assert run not in _text(b, "runs-table")
    a.get_by_role("tab", name="Runs").click()
    a.locator("#runs-refresh").click()
    _wait_text(a, "runs-table", run)  # the owner sees it

    outsider = Client(server.url, verbose=False)
    for args, api in (([run], "/runs_compare"), (run, "/runs_download_policy"), ([run], "/runs_export_csv")):
        with pytest.raises(Exception, match="that you may see"):
            outsider.predict(args, api_name=api)
    with pytest.raises(Exception, match="that you may see"):
        outsider.predict(["no-such-run"], api_name="/runs_compare")  # unknown reads the same as foreign

    t.get_by_role("tab", name="Teacher").click()
    t.locator("#teacher-refresh").click()
    _wait_text(t, "teacher-runs", run)
    t.locator("#teacher-pin").click()
    _wait_text(t, "teacher-msg", "pinned")
    b.locator("#runs-refresh").click()
    _wait_text(b, "runs-table", run)
    b.get_by_role("tab", name="Playground").click()
    b.locator("#pg-model input").click()  # the model list: the pinned run is there without a refresh button
    b.locator("[role='option']", has_text=run).first.wait_for(timeout=10_000)
    b.keyboard.press("Escape")
    frontier, _overlay = outsider.predict([run], api_name="/runs_compare")  # pinned: the class may compare it
    assert frontier


def test_labels_of_two_students_reach_the_class_count_and_the_teacher(people, server):
    a, b, t = people.a, people.b, people.teacher
    for page in (a, b):
        page.get_by_role("tab", name="Feedback").click()
        page.wait_for_function(  # a pair is on screen as the tab opens
            "() => { const t = document.querySelector('#fb-resp-b textarea'); return t && t.value && t.value !== '…'; }", timeout=120_000
        )
        page.locator("#fb-a").click()
        _wait_text(page, "fb-counts", "You: 1")
    _wait_text(b, "fb-counts", "class: 2")
    records = [json.loads(line) for line in (server.root / "feedback" / "labels.jsonl").read_text().splitlines()]
    assert len({r["labeller"] for r in records}) == 2 and all(KEY not in json.dumps(r) for r in records)
    t.get_by_role("tab", name="Teacher").click()
    t.locator("#teacher-refresh").click()
    _wait_text(t, "teacher-labels", "2 labels from 2 people")
    assert "bAnnbimg srcx" in _text(t, "teacher-labellers")
