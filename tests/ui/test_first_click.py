"""A newcomer's first minutes in headless Chromium at 1400×1000 (issue 25): each tab opens without empty
placeholders (no table headed ``1 2 3``, no empty plot frames), and its first obvious click shows a
result on the page. Local mode on the real default model for the Playground, KL, Feedback and Theory;
then a class (a teacher key) where a student sees no teacher-key field, the teacher's first clicks
work, and a pinned run reaches the student's model list without a refresh button.
Screenshots of each tab after its first click go to /tmp/shots/first-click-*.png."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from rlhf_demo.classroom import limits

SHOTS = Path("/tmp/shots")
KEY, CODE = "first-click-key-91", "Q4T7WX"
pytestmark = [pytest.mark.browser]

EMPTY_TABLES = """() => [...document.querySelectorAll('table')].filter(t => t.offsetParent !== null).some(t => {
  const head = [...t.querySelectorAll('thead th')].map(th => th.innerText.trim()).filter(Boolean);
  return head.length > 0 && head.every((h, i) => h === String(i + 1));
})"""
"""Whether a visible table is headed 1, 2, 3, … (Gradio's empty Dataframe)."""
EMPTY_PLOTS = """() => [...document.querySelectorAll('[aria-label="Empty value"]')].filter(e => e.offsetParent !== null).length"""
"""Visible components with nothing in them (Gradio's empty-value icon: an empty plot, text or highlight)."""


def _open(page, url: str, tab: str):
    page.goto(url)
    page.get_by_role("tab", name=tab).click()
    page.wait_for_timeout(800)


def _no_placeholders(page, where: str):
    assert not page.evaluate(EMPTY_TABLES), f"{where}: an empty table headed 1 2 3 is on screen"
    assert page.evaluate(EMPTY_PLOTS) == 0, f"{where}: an empty plot frame is on screen"


def _texts(locator) -> list[str]:
    """The text of each element (SVG text has no innerText)."""
    return locator.evaluate_all("els => els.map(e => e.textContent)")


def _shot(page, name: str):
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"first-click-{name}.png"), full_page=True)


@pytest.mark.integration
def test_playground_word_bias_shows_its_effect(page, app_url, default_bundle):
    _open(page, app_url, "Playground")
    _no_placeholders(page, "Playground on first view")
    assert page.locator("#pg-hint").is_visible() and not page.locator("#pg-results").is_visible()
    page.locator("#pg-bias textarea, #pg-bias input").first.fill("great: 5, terrible: -5")
    t0 = time.perf_counter()
    page.get_by_role("button", name="Generate", exact=True).click()
    page.locator("#pg-tokens").wait_for(state="visible", timeout=120_000)
    page.locator("#pg-bars .js-plotly-plot").wait_for(timeout=30_000)
    seconds = time.perf_counter() - t0
    info = page.locator("#pg-step-info").inner_text()
    assert "without → with" in info and "great (+5)" in info and "terrible (-5)" in info, info
    chart = page.locator("#pg-bias-plot .js-plotly-plot")
    chart.wait_for(timeout=30_000)
    legend = _texts(chart.locator(".legendtext"))
    assert legend == ["without the bias", "with the bias"], legend
    labels = _texts(chart.locator(".xtick text"))
    assert labels == ["great (+5)", "terrible (-5)"], labels  # one bar pair per word: both spellings merged, no ✗
    assert "0.00%" not in " ".join(_texts(chart.locator(".bartext")))
    assert "without the word bias" in " ".join(_texts(page.locator("#pg-bars .legendtext")))
    _no_placeholders(page, "Playground after Generate")
    _shot(page, "playground")
    assert seconds < 60, f"Generate took {seconds:.1f} s to show its text"


@pytest.mark.integration
def test_kl_tab_inputs_follow_the_mode_and_compute_shows_the_plot(page, app_url, default_bundle):
    _open(page, app_url, "KL")
    _no_placeholders(page, "KL on first view")
    assert not page.locator("#kl-response").is_visible()  # "generate with the policy": no typed response
    assert page.locator("#kl-max-new").is_visible()
    page.locator("#kl-mode").get_by_label("type it in").check()
    page.locator("#kl-response").wait_for(state="visible", timeout=10_000)
    assert not page.locator("#kl-max-new").is_visible()
    page.locator("#kl-mode").get_by_label("generate with the policy").check()
    page.locator("#kl-response").wait_for(state="hidden", timeout=10_000)
    page.locator("#kl-go").click()
    page.locator("#kl-per-token-plot .js-plotly-plot").wait_for(timeout=120_000)
    assert "exact KL" in page.locator("#kl-totals").inner_text()
    assert not page.locator("#kl-lab-summary").is_visible()  # the lab's tables wait for the lab's own click
    _no_placeholders(page, "KL after Compute KL")
    _shot(page, "kl")


@pytest.mark.integration
def test_feedback_asks_its_question_on_whole_words(page, app_url, default_bundle):
    from rlhf_demo.classroom.roster import DEFAULT_QUESTION
    from rlhf_demo.data.prompts import builtin_prompts

    _open(page, app_url, "Feedback")
    page.wait_for_function(
        "() => { const t = document.querySelector('#fb-resp-b textarea'); return t && t.value && t.value !== '…'; }", timeout=120_000
    )
    assert DEFAULT_QUESTION in page.locator("#fb-question").inner_text()
    opening = page.locator("#fb-prompt textarea, #fb-prompt input").first.input_value()
    full = next(p for p in builtin_prompts("train") if p.startswith(opening))
    assert full == opening or not full[len(opening)].isalnum(), f"{opening!r} cuts a word of {full!r}"
    page.locator("#fb-a").click()
    page.locator("#fb-counts").get_by_text("You: 1").wait_for(timeout=60_000)
    _shot(page, "feedback")


@pytest.mark.integration
def test_theory_opens_without_empty_tables_and_samples_on_the_first_click(page, app_url, default_bundle):
    _open(page, app_url, "Theory")
    page.locator("#toy-update-plot .js-plotly-plot").wait_for(timeout=60_000)  # the page's load: the toy at π_ref
    _no_placeholders(page, "Theory on first view")
    page.locator("#th-sample").click()
    page.locator("#th-pistar-plot .js-plotly-plot").wait_for(timeout=120_000)
    assert "distinct candidates" in page.locator("#th-status").inner_text()
    _shot(page, "theory")


# ---------------------------------------------------------------------- a class
@pytest.fixture(scope="module")
def classroom(tmp_path_factory, tiny_model_dir, close_demo):
    """A class's server (a teacher key) with one student's finished run (a policy folder) in it."""
    from rlhf_demo.ui.app import build_demo
    from rlhf_demo.ui.context import AppContext

    mp = pytest.MonkeyPatch()
    mp.setenv("RLHF_DEMO_TEACHER_KEY", KEY)
    mp.setenv("RLHF_DEMO_CLASS_CODE", CODE)
    for k in (limits.SHARED_ENV, limits.MODELS_ENV, limits.MAX_TRAIN_S_ENV):
        mp.delenv(k, raising=False)
    root = tmp_path_factory.mktemp("first-click-class") / "runs"
    mp.setenv("RLHF_DEMO_FEEDBACK", str(root / "feedback" / "labels.jsonl"))
    run = root / "ppo-someone-else"
    shutil.copytree(tiny_model_dir, run / "policy")
    (run / "config.json").write_text(json.dumps({"algo": "ppo"}))
    ctx = AppContext(runs_dir=root)
    ctx.record.set_owner(run, "0" * 16, "another-student")
    demo = build_demo(ctx)
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        yield SimpleNamespace(url=demo.local_url.rstrip("/"), run=run.name)
    finally:
        close_demo(demo)
        mp.undo()


def _arrive(browser, url: str, join: bool):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(url)
    page.wait_for_function("() => (document.querySelector('#who')?.innerText || '').includes('You are')", timeout=60_000)
    if join:
        page.locator("#who-code input, #who-code textarea").first.fill(CODE)
        page.locator("#who-join").click()
        page.locator("#who-join").wait_for(state="hidden", timeout=30_000)
    return page


def _model_options(page, elem_id: str) -> str:
    page.locator(f"#{elem_id} input").click()  # the list opens
    page.wait_for_timeout(1200)
    text = " ".join(page.locator("[role='option']").all_inner_texts())
    page.keyboard.press("Escape")
    return text


def test_classroom_student_sees_no_key_and_a_pinned_run_without_refresh(browser, classroom):
    student = _arrive(browser, classroom.url, join=True)
    assert not student.locator("#who-key").is_visible()  # behind the closed "I'm the teacher"
    assert student.get_by_text("I'm the teacher").is_visible()
    before = _model_options(student, "pg-model")
    assert "base: SmolLM2" in before and classroom.run not in before  # another student's run: not pinned yet

    teacher = _arrive(browser, classroom.url, join=False)
    teacher.get_by_text("I'm the teacher").click()
    teacher.locator("#who-key input").fill(KEY)
    teacher.locator("#who-unlock").click()
    teacher.get_by_role("tab", name="Teacher").click(timeout=20_000)
    teacher.locator("#teacher-code").get_by_text(CODE).wait_for(timeout=20_000)
    _no_placeholders(teacher, "Teacher tab")
    teacher.locator("#teacher-question input, #teacher-question textarea").first.fill("Which continuation is funnier?")
    teacher.locator("#teacher-question-save").click()
    teacher.locator("#teacher-msg").get_by_text("now asks").wait_for(timeout=10_000)
    teacher.locator("#teacher-run input").click()
    teacher.locator("[role='option']", has_text=classroom.run).click()
    teacher.locator("#teacher-pin").click()
    teacher.locator("#teacher-msg").get_by_text("pinned").wait_for(timeout=10_000)
    _shot(teacher, "teacher")

    student.keyboard.press("Tab")  # the list closed; the page checks its model lists every 10 seconds
    deadline = time.monotonic() + 25
    while classroom.run not in (seen := _model_options(student, "pg-model")) and time.monotonic() < deadline:
        student.keyboard.press("Tab")  # leave the list: a click on the focused input would not open it again
        student.wait_for_timeout(1000)
    assert classroom.run in seen  # no refresh button pressed, no tab changed
    student.get_by_role("tab", name="Feedback").click()
    student.locator("#fb-question").get_by_text("Which continuation is funnier?").wait_for(timeout=60_000)
    _shot(student, "student")
    for page in (student, teacher):
        page.context.close()
