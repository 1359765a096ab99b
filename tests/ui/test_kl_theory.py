"""The KL and Theory tabs: through their HTTP API on the tiny model (fast, bad inputs answered clearly)
and in headless Chromium on the real default model (plots drawn; screenshots in /tmp/shots/)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHOTS = Path("/tmp/shots")


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def _kl_args(policy, ref, prompt="The movie was", mode="type it in", response=" great fun", temp=1.0, n_new=6):
    return [policy, ref, temp, prompt, mode, response, n_new, 0, "kl_exact"]


def test_api_kl_tokens_tiny_model(client, tiny_model_dir):
    tiny = str(tiny_model_dir)
    out = client.predict(*_kl_args(tiny, tiny, temp=0.5), api_name="/kl_tokens")
    status, highlights, totals = out[0], out[1], out[2]
    assert status.startswith("**Done") and "exact KL" in totals
    entries = highlights["value"] if isinstance(highlights, dict) else highlights
    assert len(entries) == 2  # " great", " fun"
    assert out[3] is not None and out[4] is not None  # per-token figure, top-candidates figure


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(response=""), "response is empty"),
        (dict(prompt=""), "prompt is empty"),
        (dict(policy="./no/such/model"), "does not exist"),
    ],
)
def test_api_kl_bad_inputs_are_clear_and_server_keeps_serving(client, tiny_model_dir, change, message):
    tiny = str(tiny_model_dir)
    kw = {"policy": tiny, "ref": tiny, **change}
    out = client.predict(*_kl_args(kw.pop("policy"), kw.pop("ref"), **kw), api_name="/kl_tokens")
    assert out[0].startswith("**Error") and message in out[0]
    ok = client.predict(*_kl_args(tiny, tiny), api_name="/kl_tokens")
    assert ok[0].startswith("**Done")


def test_api_estimator_lab_limit_and_run(client, tiny_model_dir):
    tiny = str(tiny_model_dir)
    with pytest.raises(Exception, match=r"greater than maximum|N must be"):
        client.predict(tiny, tiny, 1.0, "The movie was", 10_000, 4, 0, api_name="/kl_estimator_lab")
    out = client.predict(tiny, tiny, 0.7, "The movie was", 6, 3, 0, api_name="/kl_estimator_lab")
    assert out[0].startswith("**Done") and out[2] is not None


def test_api_theory_bad_beta_and_toy(client, tiny_model_dir):
    out = client.predict(str(tiny_model_dir), "length", "The movie was", 4, 3, 0, 0.5, api_name="/theory_candidates")
    assert out[0].startswith("**Done")
    with pytest.raises(Exception, match=r"less than minimum|positive"):
        client.predict(-1.0, api_name="/theory_beta")  # Gradio's bound answers; check_beta stands behind it
    moved = client.predict(0.7, api_name="/theory_beta")  # the client's session keeps the candidates
    assert moved[0].startswith("At β = 0.7") and moved[1] is not None and moved[2] is not None
    toy = ["great, good, bad", "1, 0, -1", "", 0.5, 8, True, 0.0, 0]
    res = client.predict(*toy[:-2], -0.5, 0, api_name="/toy_step")
    assert "β must be ≥ 0" in res[0]
    res = client.predict(*toy, api_name="/toy_step")
    assert res[0].startswith("Step 1")
    res = client.predict(*toy[:1], "1, 0", *toy[2:], api_name="/toy_step")
    assert "one reward per word" in res[0]


def test_api_theory_endpoints_have_named_parameters(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    names = {ep: [p["parameter_name"] for p in api[ep]["parameters"]] for ep in api}
    assert names["/theory_candidates"] == ["reference_model", "reward", "prompt", "k", "response_tokens", "seed", "beta"]
    assert names["/theory_beta"] == ["beta"]  # the candidates stay in the session
    toy = ["words", "rewards", "reference_probs", "learning_rate", "samples_per_step", "baseline", "kl_beta", "seed"]
    assert names["/toy_reset"] == names["/toy_step"] == toy and names["/toy_run"] == toy + ["steps"]
    assert not [ep for ep in api if ep.startswith("/on_") or ep.startswith("/lambda")]


def test_api_toy_reset_and_run(client):
    toy = dict(
        words="up, down", rewards="1, -1", reference_probs="", learning_rate=0.5, samples_per_step=8, baseline=True, kl_beta=0.5, seed=0
    )
    res = client.predict(**toy, api_name="/toy_reset")
    assert res[0].startswith("Step 0") and "β·log Z" in res[0]
    res = client.predict(**toy, steps=30, api_name="/toy_run")
    assert res[0].startswith("Step 30") and "distance to π" in res[0]
    res = client.predict(**toy, api_name="/toy_step")  # the session's policy goes on from step 30
    assert res[0].startswith("Step 31")


@pytest.mark.browser
@pytest.mark.integration
def test_kl_and_theory_panels_render_on_the_real_model(page, app_url, default_bundle):
    SHOTS.mkdir(exist_ok=True)
    page.goto(app_url)
    page.get_by_role("tab", name="KL").click()

    # panel 1: per-token KL of a typed response, base vs base at policy temperature 0.7
    temp = page.locator("#kl-temp input[type=number]")
    temp.fill("0.7")
    temp.press("Enter")
    page.locator("#kl-mode").get_by_label("type it in").check()
    page.locator("#kl-go").click()
    page.locator("#kl-status").get_by_text("Done").wait_for(timeout=120_000)
    plot = page.locator("#kl-per-token-plot .js-plotly-plot")
    plot.wait_for(timeout=30_000)
    assert plot.locator(".bars path").count() > 0  # the bars are drawn
    assert "exact KL" in page.locator("#kl-totals").inner_text()
    page.locator("#kl-highlight").scroll_into_view_if_needed()
    page.locator("#kl-status").screenshot(path=str(SHOTS / "kl_panel1_status.png"))
    _shot_region(page, "#kl-status", "#kl-top-plot", SHOTS / "kl_panel1_per_token.png")

    # panel 2: estimator lab, 8 samples of 12 tokens
    n = page.locator("#kl-lab-n input[type=number]")
    n.fill("8")
    n.press("Enter")
    page.locator("#kl-lab-go").click()
    page.locator("#kl-lab-status").get_by_text("samples").wait_for(timeout=120_000)
    page.locator("#kl-lab-plot .js-plotly-plot").wait_for(timeout=30_000)
    _shot_region(page, "#kl-lab-status", "#kl-lab-summary", SHOTS / "kl_panel2_estimator_lab.png")

    # panel 3: β and the optimal policy
    page.get_by_role("tab", name="Theory").click()
    k = page.locator("#th-k input[type=number]")
    k.fill("8")
    k.press("Enter")
    page.locator("#th-sample").click()
    page.locator("#th-status").get_by_text("distinct candidates").wait_for(timeout=120_000)
    page.locator("#th-pistar-plot .js-plotly-plot").wait_for(timeout=30_000)
    page.locator("#th-curves-plot .js-plotly-plot").wait_for(timeout=30_000)
    _shot_region(page, "#th-beta", "#th-pistar-plot", SHOTS / "theory_panel3_optimal_policy.png")

    # panel 4: toy policy gradient, run 200 steps with the KL penalty, then one step from the start
    page.locator("#toy-run").click()
    page.locator("#toy-status").get_by_text("Step 200").wait_for(timeout=60_000)
    page.locator("#toy-history-plot .js-plotly-plot").wait_for(timeout=30_000)
    assert "distance to π" in page.locator("#toy-status").inner_text()
    _shot_region(page, "#toy-words", "#toy-samples", SHOTS / "theory_panel4_toy_run.png")
    page.locator("#toy-reset").click()
    page.locator("#toy-status").get_by_text("Step 0").wait_for(timeout=30_000)
    page.locator("#toy-step").click()
    page.locator("#toy-status").get_by_text("Step 1:").wait_for(timeout=30_000)
    page.locator("#toy-samples").get_by_text("up").first.wait_for(timeout=10_000)
    _shot_region(page, "#toy-words", "#toy-samples", SHOTS / "theory_panel4_toy_step.png")


def _shot_region(page, top_sel: str, bottom_sel: str, path: Path) -> None:
    """Screenshot the page from the top of one element to the bottom of another."""
    page.locator(top_sel).scroll_into_view_if_needed()
    top = page.locator(top_sel).bounding_box()
    bottom = page.locator(bottom_sel).bounding_box()
    y0 = top["y"]
    y1 = bottom["y"] + bottom["height"]
    scroll = page.evaluate("window.scrollY")
    page.screenshot(
        path=str(path), full_page=True, clip={"x": 0, "y": y0 + scroll, "width": page.viewport_size["width"], "height": max(50, y1 - y0)}
    )


@pytest.mark.browser
def test_kl_tab_opens_on_the_shipped_example_and_the_first_click_shows_kl(page, app_url, default_bundle):
    """The tab as a new user finds it: the shipped PPO policy against the base, nothing changed, one click."""
    import re

    SHOTS.mkdir(exist_ok=True)
    page.goto(app_url)
    page.get_by_role("tab", name="KL").click()
    assert "example: PPO-tuned (shipped)" in page.locator("#kl-policy input").input_value()
    assert "base" in page.locator("#kl-reference input").input_value()
    page.locator("#kl-go").click()
    page.locator("#kl-status").get_by_text("Done").wait_for(timeout=120_000)
    page.locator("#kl-per-token-plot .js-plotly-plot").wait_for(timeout=30_000)
    total = float(re.search(r"exact KL (\d+\.\d+)", page.locator("#kl-totals").inner_text()).group(1))
    assert total > 0.1
    page.locator("#kl-lab-go").click()
    page.locator("#kl-lab-status").get_by_text("samples").wait_for(timeout=120_000)
    true_kl = float(re.search(r"True KL ≈ (\d+\.\d+)", page.locator("#kl-lab-status").inner_text()).group(1))
    assert true_kl > 0.1
    page.locator("#kl-lab-plot .js-plotly-plot").wait_for(timeout=30_000)
    page.evaluate("window.scrollTo(0, 0)")
    _shot_region(page, "#kl-policy", "#kl-top-plot", SHOTS / "kl_tab_opens.png")
    _shot_region(page, "#kl-lab-n", "#kl-lab-summary", SHOTS / "kl_tab_opens_estimator_lab.png")
