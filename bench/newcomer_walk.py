"""A newcomer's first ten minutes, timed: the first obvious click on every tab and how long until its
result is on screen, in headless Chromium at 1400×1000 against the real app (local mode, the default
model, its own process on 127.0.0.1, runs in a temporary folder).

    flock /tmp/rlhf-cpu.lock .venv/bin/python bench/newcomer_walk.py [--json OUT]

Clicks, in the order a newcomer meets the tabs: Playground "Generate" → the token bars; KL "Compute KL"
→ its plot; Training "Start training" (PPO, quick preset, defaults) → the first update's curves, then
"Stop" → the run says it stopped (its held-out evaluation included); DPO "Start" → the set-up line, then
"Stop" → stopped; Feedback: the tab opens → a pair to label, "A is better" → the next pair; Runs: the
tab opens → the frontier of the shipped runs; Theory "Sample candidates" → π*. Times are wall seconds
from the click (or the tab's opening) to the result; they depend on the machine (printed first).
Uses the page helpers of ``scripts/screenshots.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))
from machine import describe  # noqa: E402
from screenshots import (  # noqa: E402
    CHROMIUM,
    VIEWPORT,
    button,
    free_port,
    open_tab,
    panel,
    start_app,
    stop_app,
    wait_for_app,
    wait_for_plot,
)

TWO_TEXTS = "() => [...document.querySelectorAll('[role=tabpanel] textarea')].filter(t => t.offsetParent && t.value.trim()).length >= 2"


def timed(results: dict, name: str, act, until) -> None:
    """``act()`` (a click, or nothing), then ``until()`` (waits for the result): wall seconds into ``results``."""
    t0 = time.monotonic()
    act()
    until()
    results[name] = round(time.monotonic() - t0, 2)
    print(f"{name:32s} {results[name]:7.2f} s", flush=True)


def status_says(page, elem_id: str, words: tuple[str, ...], timeout_s: float = 240) -> None:
    page.wait_for_function(
        "([id, words]) => { const e = document.getElementById(id); const t = e ? e.innerText.toLowerCase() : '';"
        " return words.some(w => t.includes(w)); }",
        arg=[elem_id, list(words)],
        timeout=timeout_s * 1000,
    )


def walk(page, results: dict) -> None:
    open_tab(page, "Playground")
    tab = panel(page)
    timed(results, "playground: Generate", lambda: button(tab, "Generate").click(), lambda: wait_for_plot(tab, prefer="#pg-bars"))

    open_tab(page, "KL")
    tab = panel(page)
    timed(results, "kl: Compute KL", lambda: button(tab, "Compute KL").click(), lambda: wait_for_plot(tab, prefer="#kl-per-token-plot"))

    open_tab(page, "Training")
    tab = panel(page)
    timed(
        results, "training: Start → 1st update", lambda: button(tab, "Start").click(), lambda: wait_for_plot(tab, min_points=1, timeout=300)
    )
    timed(results, "training: Stop → stopped", lambda: button(tab, "Stop").click(), lambda: status_says(page, "ppo-status", ("stopped",)))
    dpo = tab.get_by_role("radio", name="DPO", exact=True)
    dpo.first.check()
    page.wait_for_timeout(800)
    tab = panel(page)
    timed(
        results,
        "dpo: Start → set-up line",
        lambda: button(tab, "Start").click(),
        lambda: status_says(page, "dpo-status", ("reference", "set-up", "setting up", "batch", "step")),
    )
    timed(results, "dpo: Stop → stopped", lambda: button(tab, "Stop").click(), lambda: status_says(page, "dpo-status", ("stopped",)))

    timed(
        results, "feedback: open → a pair", lambda: open_tab(page, "Feedback"), lambda: page.wait_for_function(TWO_TEXTS, timeout=180_000)
    )
    tab = panel(page)
    before = tab.locator("textarea").locator("visible=true").first.input_value()
    timed(
        results,
        "feedback: A is better → next pair",
        lambda: button(tab, "A is better").click(),
        lambda: page.wait_for_function(
            "(old) => { const t = [...document.querySelectorAll('[role=tabpanel] textarea')].filter(t => t.offsetParent);"
            " return t.length >= 2 && t[0].value.trim() && t[0].value !== old; }",
            arg=before,
            timeout=180_000,
        ),
    )

    timed(
        results,
        "runs: open → frontier",
        lambda: open_tab(page, "Runs"),
        lambda: wait_for_plot(panel(page), prefer="#runs-frontier", timeout=60),
    )

    open_tab(page, "Theory")
    tab = panel(page)
    timed(
        results,
        "theory: Sample candidates",
        lambda: button(tab, "Sample candidates").click(),
        lambda: wait_for_plot(tab, prefer="#th-pistar-plot"),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the times here as one JSON object")
    ap.add_argument("--port", type=int, default=7981)
    args = ap.parse_args()
    print(f"machine: {describe()}")
    tmp = Path(tempfile.mkdtemp(prefix="rlhf-walk-"))
    port = free_port(args.port)
    url = f"http://127.0.0.1:{port}/"
    proc = start_app(port, tmp)
    results: dict = {}
    try:
        t0 = time.monotonic()
        wait_for_app(proc, url, tmp)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport=VIEWPORT)
                page.set_default_timeout(240_000)
                page.goto(url)
                page.get_by_role("tab", name="Playground", exact=True).wait_for(timeout=60_000)
                results["page: open → tabs"] = round(time.monotonic() - t0, 2)
                try:
                    walk(page, results)
                except Exception as e:  # noqa: BLE001 - print what was measured, and where it stopped
                    page.screenshot(path=str(tmp / "walk-failed.png"), full_page=True)
                    print(f"FAILED after {list(results)[-1]}: {type(e).__name__}: {e} (page: {tmp / 'walk-failed.png'})")
                    return 1
            finally:
                browser.close()
    finally:
        stop_app(proc)
        if args.json:
            Path(args.json).write_text(json.dumps({"machine": describe(), "seconds": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
