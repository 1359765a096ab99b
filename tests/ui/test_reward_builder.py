"""The reward builder in the Training tab (issue 27): rows (component, weight) write the spec, a typed
spec redraws the rows, a Python file's error is one line with nothing lost, and a 1-update PPO run on
a two-term spec shows each component's score beside the total in the batch table."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlhf_demo.rewards.spec import EXAMPLE
from rlhf_demo.ui.training_ppo import batch_frame, component_names

SHOTS = Path("/tmp/shots")


def test_the_batch_table_shows_each_component_beside_the_total():
    rows = [
        {"query": "q", "response": "r", "reward": 0.4, "kl": 0.1, "details": {}, "components": {"vader-positive": 0.5, "on-topic": 1.0}},
        {"query": "q", "response": "s", "reward": -0.1, "kl": 0.2, "details": {}, "components": {"vader-positive": -0.2, "on-topic": 0.0}},
    ]
    df = batch_frame(rows)
    assert list(df.columns) == ["query", "response", "reward", "vader-positive", "on-topic", "KL (k1)", "reward model output"]
    assert list(df["on-topic"]) == [1.0, 0.0] and list(df["vader-positive"]) == [0.5, -0.2]
    one = [{"query": "q", "response": "r", "reward": 0.5, "kl": 0.1, "details": {"compound": 0.5}, "components": {"vader-positive": 0.5}}]
    assert component_names(one) == [] and "compound 0.50" in batch_frame(one).iloc[0, -1]  # a single reward: its raw output
    assert component_names([{**one[0], "reward": 1.0}]) == ["vader-positive"]  # 2*vader-positive: the component differs


def _fill(page, elem_id, value):
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(str(value))
    box.press("Tab")


def _spec(page) -> str:
    return page.locator("#ppo-reward-spec textarea, #ppo-reward-spec input").first.input_value()


def _wait_spec(page, want: str):
    page.wait_for_function(
        "w => { const e = document.querySelector('#ppo-reward-spec textarea, #ppo-reward-spec input'); return e && e.value === w; }",
        arg=want,
        timeout=10_000,
    )


@pytest.mark.browser
@pytest.mark.slow
def test_rows_write_the_spec_and_a_ppo_run_shows_the_components(page, app_url, tiny_model_dir, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(app_url)
    page.get_by_role("tab", name="Training").click()
    page.locator("#ppo-start").wait_for()
    assert _spec(page) == "vader-positive" and not page.locator("#ppo-reward-2").is_visible()
    # add a term: the first offered component not in the spec yet, in a new row
    page.locator("#ppo-reward-add").click()
    _wait_spec(page, "vader-positive + vader-negative")
    page.locator("#ppo-reward-2").wait_for(state="visible", timeout=10_000)  # the row: the same event, drawn after the spec
    # change the second row: another component, a negative weight (subtracted)
    page.locator("#ppo-reward-2 input").first.click()
    page.get_by_role("option", name="length", exact=True).click()
    _wait_spec(page, "vader-positive + length")
    _fill(page, "ppo-weight-2", -0.5)
    _wait_spec(page, "vader-positive - 0.5*length")
    # a spec typed in redraws the rows
    _fill(page, "ppo-reward-spec", EXAMPLE)
    page.wait_for_function("document.querySelector('#ppo-reward-3 input')?.value === 'repetition'", timeout=10_000)
    assert page.locator("#ppo-reward-2 input").input_value() == "on-topic" and not page.locator("#ppo-reward-4").is_visible()
    assert [page.locator(f"#ppo-weight-{i} input").input_value() for i in (1, 2, 3)] == ["0.7", "0.3", "-0.5"]
    # a spec that does not parse leaves the rows and says why in one line
    _fill(page, "ppo-reward-spec", "0.7*vader-positive +")
    page.locator("#ppo-reward-note").get_by_text("the rows show the last spec that parsed", exact=False).wait_for(timeout=10_000)
    assert page.locator("#ppo-reward-3 input").input_value() == "repetition"
    # a Python file whose function does not exist: one line, the spec as it was
    page.locator("#ppo-reward-py-box").get_by_text("Python reward file (local only)", exact=True).click()
    good = tmp_path / "my_reward.py"
    good.write_text("def score(texts):\n    return [t.count('e') / 10 for t in texts]\n")
    page.locator("#ppo-reward-py input[type=file]").set_input_files(str(good))
    page.locator("#ppo-reward-py").get_by_text("my_reward.py", exact=False).first.wait_for(timeout=10_000)
    _fill(page, "ppo-reward-func", "scores")
    page.locator("#ppo-reward-py-add").click()
    page.locator("#ppo-reward-note").get_by_text("defines no 'scores'", exact=False).wait_for(timeout=10_000)
    assert _spec(page) == "0.7*vader-positive +"  # nothing lost
    _fill(page, "ppo-reward-spec", EXAMPLE)
    page.wait_for_function("document.querySelector('#ppo-reward-note')?.innerText.trim() === ''", timeout=10_000)
    page.locator("#ppo-reward-help").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "reward-builder.png"))
    # a 1-update PPO run on it: the batch table shows each component beside the total
    for title in ("Optimisation", "Rollouts", "Model and LoRA", "Evaluation"):
        page.get_by_text(title, exact=True).first.click()
    _fill(page, "ppo-model", tiny_model_dir)
    _fill(page, "ppo-steps", 1)
    _fill(page, "ppo-batch-size", 4)
    _fill(page, "ppo-ppo-epochs", 1)
    _fill(page, "ppo-response-tokens", 6)
    page.locator("#ppo-eval-final input").uncheck()
    page.locator("#ppo-start").click()
    page.wait_for_function("/(finished|stopped|diverged|failed)[:]/.test(document.querySelector('#ppo-status').innerText)", timeout=180_000)
    assert "finished" in page.locator("#ppo-status").inner_text()
    page.wait_for_function("document.querySelector('#ppo-batch').innerText.includes('repetition')", timeout=30_000)
    header = page.locator("#ppo-batch thead").first.inner_text()
    assert all(n in header for n in ("reward", "vader-positive", "on-topic", "repetition", "KL")), header
    page.locator("#ppo-batch").screenshot(path=str(SHOTS / "reward-builder-batch.png"))
