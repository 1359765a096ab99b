"""The Playground tab through its HTTP API (gradio_client) and in headless Chromium (Playwright)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

SHOTS = Path("/tmp/shots")
DEFAULTS = dict(
    strategy="sample",
    temperature=0.8,
    top_k=40,
    top_p=0.95,
    min_p=0.0,
    rep=1.0,
    ngram=0,
    beams=4,
    max_new=6,
    min_new=0,
    samples=1,
    seed=0,
    bias="",
    chat=False,
    reward="vader-positive",
)


def _args(prompt, model, **change):
    knobs = {**DEFAULTS, **change}
    return [prompt, model, *knobs.values()]


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def test_api_generate_step_and_branch(client, tiny_model_dir):
    out = client.predict(*_args("The movie was", str(tiny_model_dir), samples=3, bias="great: 3"), api_name="/generate")
    tokens, status = out[0], out[11]
    assert "Generated 6 tokens" in status
    entries = tokens["value"] if isinstance(tokens, dict) else tokens
    assert len(entries) == 7  # prompt + 6 tokens, each labelled by its probability bin
    assert "TopKLogitsWarper" in out[8] and "SequenceBiasLogitsProcessor" in out[8]  # processors, in order
    assert out[9].count('class="rl-sample"') == 3  # three samples side by side
    bars, caption = client.predict(1, 2, *list(DEFAULTS.values()), api_name="/step")[:2]
    assert bars is not None and "**Step 2**" in caption and "without → with" not in caption  # no bias: no bias line
    caption, _, bias_chart = client.predict(1, 2, *_args("", "", bias="great: 3")[2:], api_name="/step")[1:4]
    assert "without → with its bias: **great** (+3)" in caption and bias_chart is not None  # the bias's effect at this step
    # Moving a knob re-draws the bars from the stored logits (no generation): top-k 1 keeps one token.
    caption = client.predict(1, 2, *_args("", "", top_k=1)[2:], api_name="/step")[1]
    assert "Kept now: 1 of 49152 tokens" in caption
    status = client.predict(1, 2, None, "wonderful", api_name="/branch")[-1]
    assert "Branch at step 2" in status and "wonderful" in status


@pytest.mark.parametrize(
    "change, message",
    [  # Gradio's slider bounds answer first; the core checks again behind them
        (dict(max_new=10**6), r"greater than maximum value 128|max_new_tokens must be"),
        (dict(temperature=-1), r"less than minimum value 0|temperature must be"),
        (dict(top_p=0), r"less than minimum value 0.05|top_p must be > 0"),
        (dict(top_k=10**6), r"greater than maximum value 200|larger than the vocabulary"),
        (dict(samples=50), r"greater than maximum value 8|num_samples must be"),
        (dict(strategy="nucleus"), r"nucleus|strategy must be one of"),
        (dict(seed=-5), r"less than minimum value 0|seed must be between 0"),
        (dict(bias="great"), r"WORD:BIAS"),
    ],
)
def test_api_rejects_out_of_range_values_clearly(client, tiny_model_dir, change, message):
    with pytest.raises(Exception, match=message):
        client.predict(*_args("The movie was", str(tiny_model_dir), **change), api_name="/generate")


def test_api_nan_temperature_sent_raw(app_url, tiny_model_dir):
    """gradio_client refuses to encode NaN, but a raw HTTP request can send it: the core answers."""
    import httpx

    body = '{"data": ' + json.dumps(_args("Hi", str(tiny_model_dir))).replace("0.8", "NaN", 1) + "}"
    with httpx.Client(timeout=60) as http:
        event = http.post(f"{app_url}/gradio_api/call/generate", content=body, headers={"Content-Type": "application/json"}).json()
        stream = http.get(f"{app_url}/gradio_api/call/generate/{event['event_id']}").text
    assert "event: error" in stream and "temperature must be a finite number" in stream


def test_api_bad_prompt_and_model_then_keeps_serving(client, app_url, tiny_model_dir):
    from gradio_client import Client

    with pytest.raises(Exception, match="prompt is empty"):
        client.predict(*_args("   ", str(tiny_model_dir)), api_name="/generate")
    with pytest.raises(Exception, match="unreachable|offline|Hub"):
        client.predict(*_args("Hi", "nobody/no-such-model"), api_name="/generate")
    with pytest.raises(Exception, match="Generate first"):
        Client(app_url, verbose=False).predict(1, 0, *list(DEFAULTS.values()), api_name="/step")  # a fresh session: nothing yet
    out = client.predict(*_args("Hi", str(tiny_model_dir), max_new=3), api_name="/generate")
    assert "Generated 3 tokens" in out[11]


def test_api_long_prompt_is_truncated_with_notice(client, tiny_model_dir):
    out = client.predict(*_args("word " * 400, str(tiny_model_dir), max_new=4), api_name="/generate")
    assert "only its last" in out[11]


@pytest.mark.browser
@pytest.mark.integration
def test_browser_generates_and_shows_bars(page, app_url):
    t0 = time.perf_counter()
    page.goto(app_url)
    page.get_by_role("tab", name="Playground").click()
    page.get_by_role("button", name="Generate", exact=True).wait_for()
    interactive_s = time.perf_counter() - t0
    assert interactive_s < 5, f"page took {interactive_s:.1f} s to become interactive"
    top_k = page.get_by_label("number input for Top-k")
    top_k.fill("5")
    top_k.press("Enter")
    page.get_by_role("button", name="Generate", exact=True).click()
    page.locator("#pg-status").get_by_text("Generated").wait_for(timeout=120_000)
    bars = page.locator("#pg-bars .js-plotly-plot .barlayer .point")
    bars.first.wait_for(timeout=30_000)
    assert bars.count() >= 10  # raw and processed bars for the top candidates
    assert page.locator("#pg-bars").get_by_text("★", exact=False).count() >= 1  # the chosen token is marked
    assert page.locator("#pg-bars").get_by_text("filtered").count() >= 1  # top-k 5 greys out the rest of the top 10
    # Clicking a token explores that step (entry 0 is the prompt, so entry 3 is step 2).
    page.locator("#pg-tokens .token-container .token").nth(3).click()
    page.locator("#pg-bars").get_by_text("Step 2:", exact=False).wait_for(timeout=30_000)
    page.get_by_role("button", name="Branch from this step").click()
    page.locator("#pg-status").get_by_text("Branch at step 2").wait_for(timeout=60_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "playground.png"), full_page=True)


def test_api_best_of_n_scores_with_the_chosen_reward(client, tiny_model_dir):
    out = client.predict(
        *_args("The movie was", str(tiny_model_dir), strategy="best-of-n", samples=3, reward="on-topic - 0.1*length"), api_name="/generate"
    )
    assert "(best of 3 by on-topic - 0.1*length)" in out[11] and "Best of 3 by on-topic - 0.1*length" in out[11]
    with pytest.raises(Exception, match="best-of-N reward spec: 'on-topic\\+x' is not one term"):
        client.predict(*_args("Hi", str(tiny_model_dir), strategy="best-of-n", samples=2, reward="on-topic+x"), api_name="/generate")
    with pytest.raises(Exception, match="best-of-N reward: unknown reward 'nonsense'"):
        client.predict(*_args("Hi", str(tiny_model_dir), strategy="best-of-n", samples=2, reward="nonsense"), api_name="/generate")


@pytest.mark.browser
@pytest.mark.integration
def test_browser_best_of_n_shows_its_reward(page, app_url):
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(app_url)
    page.get_by_role("tab", name="Playground").click()
    page.get_by_role("button", name="Generate", exact=True).wait_for()
    assert not page.locator("#pg-reward").is_visible()  # only best-of-n scores with a reward
    page.get_by_label("best-of-n").check()
    page.locator("#pg-reward").wait_for(state="visible")
    reward = page.locator("#pg-reward input").first
    reward.fill("vader-positive + on-topic")
    reward.press("Enter")
    page.get_by_text("More settings", exact=True).click()
    samples = page.get_by_label("number input for Samples (side by side)")
    samples.fill("4")
    samples.press("Enter")
    page.get_by_role("button", name="Generate", exact=True).click()
    status = page.locator("#pg-status")
    status.get_by_text("(best of 4 by vader-positive + on-topic)", exact=False).wait_for(timeout=120_000)
    assert "★" in status.inner_text() and "log 4 − 3/4" in status.inner_text()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "best-of-n.png"))
