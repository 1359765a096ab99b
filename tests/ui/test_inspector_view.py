"""The token inspector panel (``ui/inspector.py``) in headless Chromium, mounted in a tiny page of its
own on a real 2-update PPO run of the tiny model (its per-token store written by the trainer): a token
whose advantage is positive in ``inspect_run``'s JSON renders on the "up" side (blue), a negative one on
the "down" side; clicking a token fills the token picker and the formula panel with that token's numbers;
a run without the store and a name this user may not see each get one line. Screenshot:
/tmp/inspector-ppo.png."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

SHOT = Path("/tmp/inspector-ppo.png")
PROMPTS = ["The movie was", "I watched this film", "The acting in this", "What a story"]
PAIRS = [
    {"prompt": "This movie was", "chosen": " wonderful and <moving>.", "rejected": " a dull waste of time."},
    {"prompt": "The acting", "chosen": " is superb", "rejected": " is terrible, honestly"},
]
pytestmark = [pytest.mark.browser]


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory, close_demo):
    import gradio as gr

    from rlhf_demo.dpo.config import DPOConfig
    from rlhf_demo.dpo.trainer import DPOTrainer
    from rlhf_demo.ppo.config import preset
    from rlhf_demo.ppo.trainer import PPOTrainer
    from rlhf_demo.runs.folder import write_run
    from rlhf_demo.ui import inspector
    from rlhf_demo.ui.context import AppContext

    root = tmp_path_factory.mktemp("inspector") / "runs"
    run, dpo = root / "ppo-tiny-inspect", root / "dpo-tiny-inspect"
    ppo_kw = dict(model=str(tiny_model_dir), batch_size=4, num_mini_batches=2, steps=2, response_tokens=(6, 6), device="cpu")
    cfg = preset("quick-cpu", **ppo_kw, reward="length", gold_reward="none", eval_final=False)
    dpo_kw = dict(model=str(tiny_model_dir), steps=2, batch_size=2, max_length=48, beta=0.2, lr=0.01, eval_every=0)
    dcfg = DPOConfig.preset("quick-cpu", **dpo_kw, eval_at_start=False, kl_stop=0.0, max_seconds=0.0)
    tr, dtr = PPOTrainer(cfg, prompts=PROMPTS), DPOTrainer(dcfg, PAIRS)
    for trainer, out in ((tr, run), (dtr, dpo)):
        trainer.run_dir = out  # where the per-token store / the pairs go (runs.folder.write_run sets it too, once it does)
        list(write_run(trainer, out))
    bare = root / "ppo-without-store"  # a run from before the store: its config only
    bare.mkdir()
    (bare / "config.json").write_text(json.dumps({"algo": "ppo"}))

    ctx = AppContext(runs_dir=root)
    with gr.Blocks() as demo:
        source = gr.Textbox("", label="Run", elem_id="pick-run")
        inspector.build(ctx, source, prefix="insp")
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        yield SimpleNamespace(url=demo.local_url.rstrip("/"), run=run, dpo=dpo, bare=bare)
    finally:
        close_demo(demo)


def _pick(page, name: str):
    box = page.locator("#pick-run textarea, #pick-run input").first
    box.fill(name)
    box.press("Tab")


def _rgb(style: str) -> tuple[int, int, int]:
    return tuple(int(x) for x in re.search(r"background:\s*rgb\((\d+),\s*(\d+),\s*(\d+)\)", style).groups())


def test_positive_advantage_token_renders_up_and_its_formula_on_click(page, server):
    from rlhf_demo.inspector import inspect_run

    batch = [inspect_run(server.run, step=2, episode=e) for e in range(4)]
    # whitened over the batch, the advantages have both signs; show an episode with both if there is one
    e = next(
        (e for e, d in enumerate(batch) if min(t["advantage"] for t in d["tokens"]) < 0 < max(t["advantage"] for t in d["tokens"])), None
    )
    if e is None:
        e = next(e for e, d in enumerate(batch) if max(t["advantage"] for t in d["tokens"]) > 0)
    page.goto(server.url)
    _pick(page, server.run.name)
    page.locator("#insp-strip .tok").first.wait_for(timeout=60_000)
    assert "step 2" in page.locator("#insp-note").inner_text()  # the last update by default
    seen = {}
    for k in dict.fromkeys([e, *range(4)]):  # the chosen episode last shown
        page.locator("#insp-index input").fill(str(k))
        page.locator("#insp-index input").press("Enter")
        page.wait_for_function(f"document.querySelector('#insp-strip').innerText.includes('episode {k} ')", timeout=30_000)
        spans = page.locator("#insp-strip .tok")
        assert spans.count() == len(batch[k]["tokens"])
        seen[k] = [(spans.nth(i).get_attribute("class"), _rgb(spans.nth(i).get_attribute("style"))) for i in range(spans.count())]
    ups = [(k, i) for k, d in enumerate(batch) for i, t in enumerate(d["tokens"]) if t["advantage"] > 0]
    downs = [(k, i) for k, d in enumerate(batch) for i, t in enumerate(d["tokens"]) if t["advantage"] < 0]
    assert ups and downs
    for k, i in ups:
        cls, (r, g, b) = seen[k][i]
        assert "tok-up" in cls and b > r  # blue: the "up" side
    for k, i in downs:
        cls, (r, g, b) = seen[k][i]
        assert "tok-down" in cls and r > b  # orange: the "down" side
    page.locator("#insp-index input").fill(str(e))
    page.locator("#insp-index input").press("Enter")
    page.wait_for_function(f"document.querySelector('#insp-strip').innerText.includes('episode {e} ')", timeout=30_000)
    want = batch[e]
    ups = [i for i, t in enumerate(want["tokens"]) if t["advantage"] > 0]
    i = max(ups, key=lambda k: want["tokens"][k]["advantage"])
    page.locator(f'#insp-strip .tok[data-index="{i}"]').click()
    page.wait_for_function(
        f"document.querySelector('#insp-formula .tok-formula')?.dataset.index === '{i}'",
        timeout=30_000,
    )
    t = want["tokens"][i]
    formula = page.locator("#insp-formula").inner_text()
    assert f"min({t['ratio']:.3f}·({t['advantage']:+.3f})" in formula
    assert f"whitened A = {t['advantage']:+.4f}" in formula and f"V = {t['value']:+.4f}" in formula
    assert "tok-sel" in page.locator(f'#insp-strip .tok[data-index="{i}"]').get_attribute("class")
    assert page.locator("#insp-token input").input_value().startswith(f"{i}: ")
    page.screenshot(path=str(SHOT), full_page=True)


def test_a_run_without_store_and_a_foreign_name_get_one_line(page, server):
    page.goto(server.url)
    _pick(page, server.bare.name)
    page.wait_for_function("document.querySelector('#insp-note').innerText.includes('per-token store')", timeout=30_000)
    assert page.locator("#insp-strip .tok").count() == 0
    _pick(page, "someone-elses-run")
    page.wait_for_function("document.querySelector('#insp-note').innerText.includes('that you may see')", timeout=30_000)


def test_dpo_pair_side_by_side_coloured_by_implicit_reward(page, server):
    """The saved policy's pair 0 (the run has ended), then pair 1 of step 2's batch from the store."""
    from rlhf_demo.inspector import inspect_run

    want = inspect_run(server.dpo, pair=0)
    page.goto(server.url)
    _pick(page, server.dpo.name)
    page.locator("#insp-strip .tok").first.wait_for(timeout=60_000)
    strip = page.locator("#insp-strip").inner_text()
    assert f"chosen: Σ = {want['chosen']['reward']:+.3f}" in strip and f"margin = chosen − rejected = {want['margin']:+.3f}" in strip
    assert "<moving>" in strip  # shown as text, escaped
    for side in ("chosen", "rejected"):
        for i, t in enumerate(want[side]["tokens"]):
            cls = page.locator(f'#insp-strip .tok[data-index="{side}:{i}"]').get_attribute("class")
            assert ("tok-up" in cls) == (t["implicit_reward"] > 0) and ("tok-down" in cls) == (t["implicit_reward"] < 0)
    page.locator('#insp-strip .tok[data-index="rejected:0"]').click()
    page.wait_for_function("document.querySelector('#insp-formula .tok-formula')?.dataset.index === 'rejected:0'", timeout=30_000)
    t = want["rejected"]["tokens"][0]
    assert f"= <b>{t['implicit_reward']:+.4f}</b>" in page.locator("#insp-formula").inner_html()
    # with a step: pair 1 of step 2's batch, as that step's loss saw it (the per-step store)
    kept = inspect_run(server.dpo, step=2, pair=1)
    page.locator("#insp-index input").fill("1")  # both boxes, then one Enter: one load (two could answer out of order)
    page.locator("#insp-step input").fill("2")
    page.locator("#insp-step input").press("Enter")
    page.wait_for_function("document.querySelector('#insp-note').innerText.includes('pair 1 of the step')", timeout=30_000)
    page.wait_for_function(
        f"document.querySelector('#insp-strip').innerText.includes('chosen: Σ = {kept['chosen']['reward']:+.3f}')", timeout=30_000
    )
    assert f"training pair {kept['pair']}" in page.locator("#insp-note").inner_text()
    page.screenshot(path=str(SHOT.with_name("inspector-dpo.png")), full_page=True)
