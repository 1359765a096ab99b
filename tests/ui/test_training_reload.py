"""Classroom mode in headless Chromium, as a student sees it (issue 25, items 6 and 8), on the tiny model:

1. a student trains one PPO update; after a page reload the Training tab still shows that run (its
   status line with the run's name, its curves), restored from the browser's identity;
2. a refused action shows its line at once: the Runs tab's "Download policy" of a run name the student
   may not see shows the one refusal line within 2 s of the click.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from rlhf_demo.classroom import limits
from rlhf_demo.ui.context import NOT_YOURS

KEY = "reload-key-51c2"
CODE = "R3LD9Q"
pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir, close_demo):
    from rlhf_demo.ui.app import build_demo
    from rlhf_demo.ui.context import AppContext

    mp = pytest.MonkeyPatch()
    mp.setenv("RLHF_DEMO_TEACHER_KEY", KEY)
    mp.setenv("RLHF_DEMO_CLASS_CODE", CODE)
    mp.setenv(limits.MODELS_ENV, str(tiny_model_dir))  # the class may train the tiny model: a cheap run
    for k in (limits.SHARED_ENV, limits.MAX_TRAIN_S_ENV):
        mp.delenv(k, raising=False)
    root = tmp_path_factory.mktemp("reload") / "runs"
    mp.setenv("RLHF_DEMO_FEEDBACK", str(root / "feedback" / "labels.jsonl"))
    assert limits.current().shared
    demo = build_demo(AppContext(runs_dir=root))
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        yield SimpleNamespace(url=demo.local_url.rstrip("/"), root=root, tiny=str(tiny_model_dir))
    finally:
        close_demo(demo)
        mp.undo()


def _wait_text(page, elem_id, needle, timeout=60_000):
    try:
        page.wait_for_function(
            "([id, s]) => (document.querySelector('#' + id)?.innerText || '').includes(s)", arg=[elem_id, needle], timeout=timeout
        )
    except Exception:
        raise AssertionError(f"#{elem_id} never showed {needle!r}: {page.locator('#' + elem_id).inner_text()[:300]!r}") from None


def _fill(page, elem_id, value):
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(str(value))
    box.press("Tab")


@pytest.fixture(scope="module")
def student(browser, server):
    """A student's browser, joined to the class."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(server.url)
    page.wait_for_function("() => (document.querySelector('#who')?.innerText || '').includes('You are')", timeout=60_000)
    page.locator("#who-code input, #who-code textarea").first.fill(CODE)
    page.locator("#who-join").click()
    page.locator("#who-join").wait_for(state="hidden", timeout=30_000)
    yield page
    context.close()


def test_after_a_reload_the_student_sees_their_last_run(student, server):
    page = student
    page.get_by_role("tab", name="Training").click()
    page.locator("#training-panel-ppo").get_by_text("Model and LoRA").click()
    _fill(page, "ppo-model", server.tiny)
    _fill(page, "ppo-steps", 1)
    page.locator("#ppo-start").click()
    _wait_text(page, "ppo-status", "compare it in Runs", timeout=180_000)  # ended
    run = next(p.name for p in server.root.iterdir() if p.name.startswith("ppo-"))
    assert run in page.locator("#ppo-status").inner_text()

    page.reload()
    page.wait_for_function("() => (document.querySelector('#who')?.innerText || '').includes('You are')", timeout=60_000)
    assert page.locator("#who-join").is_hidden()  # the same student, still joined
    page.get_by_role("tab", name="Training").click()
    _wait_text(page, "ppo-status", run, timeout=15_000)  # the last run, restored
    page.wait_for_function("() => document.querySelectorAll('#ppo-plot .scatterlayer .trace').length > 0", timeout=15_000)


def test_a_refused_download_by_name_shows_its_line_within_two_seconds(student):
    page = student
    page.get_by_role("tab", name="Runs").click()
    page.locator("#runs-table").wait_for()
    box = page.locator("#runs-one input").first
    box.fill("ppo-20990101-000000-abcdef")  # no run of theirs: foreign or unknown reads the same
    box.press("Enter")
    t0 = time.monotonic()
    page.locator("#runs-zip").click()
    page.get_by_text(NOT_YOURS[:40]).first.wait_for(timeout=10_000)
    took = time.monotonic() - t0
    assert took <= 2.0, f"the refusal took {took:.1f} s to show"
