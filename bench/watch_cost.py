"""What watching a run in a browser on the same machine costs: seconds per PPO update from the command
line against the same run started from the Training tab while headless Chromium watches it live, in
one run of this script (ratio = app / CLI; the issue's goal is ≤ 1.3).

    flock /tmp/rlhf-cpu.lock .venv/bin/python bench/watch_cost.py [--steps 8] [--batch 16]

The app runs in a subprocess on 127.0.0.1 only; Chromium is Debian's (/usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from machine import describe  # noqa: E402


def per_update(run: Path) -> tuple[float, int]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    times = [r["time/update"] for r in rows if "time/update" in r][1:]  # the first update warms up
    return statistics.mean(times), len(rows)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(tmp: Path, steps: int, batch: int) -> float:
    out = tmp / "cli"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "rlhf_demo",
            "train",
            "--algo",
            "ppo",
            "--steps",
            str(steps),
            "--batch-size",
            str(batch),
            "--num-mini-batches",
            "1",
            "--no-eval-final",
            "--quiet",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return per_update(out)[0]


def app(tmp: Path, steps: int, batch: int, chromium: str) -> float:
    from playwright.sync_api import sync_playwright

    port, runs = free_port(), tmp / "app-runs"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RLHF_DEMO_RUNS": str(runs), "HF_HUB_OFFLINE": "1"}
    code = f"from rlhf_demo.ui.app import build_demo\nbuild_demo().launch(server_name='127.0.0.1', server_port={port}, quiet=True)\n"
    server = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                ],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            t0 = time.monotonic()
            while True:
                try:
                    page.goto(f"http://127.0.0.1:{port}/")
                    break
                except Exception:  # noqa: BLE001 - the server is still starting
                    if time.monotonic() - t0 > 120:
                        raise
                    time.sleep(1)
            page.get_by_role("tab", name="Training").click()
            for title in ("Optimisation", "Evaluation"):
                page.get_by_text(title, exact=True).first.click()
            for elem, value in (("ppo-steps", steps), ("ppo-batch-size", batch), ("ppo-num-mini-batches", 1)):
                box = page.locator(f"#{elem} input").first
                box.fill(str(value))
                box.press("Tab")
            page.locator("#ppo-eval-final input").uncheck()
            page.locator("#ppo-start").click()
            page.locator("#ppo-status").get_by_text("finished", exact=False).wait_for(timeout=900_000)
            page.screenshot(path=str(tmp / "watch.png"), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    (run,) = [r for r in runs.iterdir() if r.name.startswith("ppo-")]
    return per_update(run)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rlhf-watch-"))
    print(f"machine: {describe()}")
    c = cli(tmp, args.steps, args.batch)
    a = app(tmp, args.steps, args.batch, args.chromium)
    c2 = cli(tmp / "again", args.steps, args.batch)
    base = (c + c2) / 2
    print(
        f"s / update, batch {args.batch}: CLI {c:.2f} and {c2:.2f} (before and after), app watched in Chromium {a:.2f} "
        f"→ ratio {a / base:.2f} (goal ≤ 1.3); screenshot {tmp / 'watch.png'}"
    )


if __name__ == "__main__":
    main()
