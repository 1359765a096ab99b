"""Remake the README's pictures (docs/img/*.png) from the real app in headless Chromium.

    flock /tmp/rlhf-cpu.lock .venv/bin/python scripts/screenshots.py [--only NAME ...] [--port N]

Starts ``python app.py`` in local mode on a free 127.0.0.1 port (its runs and labels in a temporary
folder, so the checkout's ``runs/`` is untouched), waits for it, drives Debian's Chromium at 1400×1000
and writes one PNG per picture, clipped to the useful region and kept under 250 KB (quantised, then
downscaled if needed):

    playground  the Playground after Generate with its defaults: the coloured tokens and the token bars
    kl          the KL tab after "Compute KL" (the shipped PPO example against the base)
    feedback    the Feedback tab as it opens (a pair to label)
    runs        the Runs tab as it opens (the shipped examples on the reward-KL frontier)
    theory      the Theory tab after "Sample candidates" (π* beside π_ref)
    teacher     the Teacher tab, where the page shows one (not in local mode: skipped there)
    training    a short PPO run live (few small updates), shot once UPDATES updates are plotted, then stopped

The app is killed at the end, whatever happens. Elements are found by their visible text and labels
first (the UI changes), by element ids second. Uses the CPU for about two minutes: run it under the
lock on a shared machine.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # rlhf_demo, for the knobs' metadata
OUT = ROOT / "docs" / "img"
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1400, "height": 1000}
MAX_BYTES = 250_000
MAX_CLIP_HEIGHT = 1300  # px of page kept in one picture
LOCAL_ONLY_UNSET = ("SPACE_ID", "RLHF_DEMO_SHARED", "RLHF_DEMO_TEACHER_KEY", "RLHF_DEMO_TEACHERS", "RLHF_DEMO_CLASS_CODE")
# A short PPO run on the default model that still draws curves: small batch, short responses, one epoch.
TRAINING_SETTINGS = {
    "steps": 20,
    "batch_size": 8,
    "num_mini_batches": 2,
    "ppo_epochs": 1,
    "response_tokens": 8,
    "eval_every": 0,
}
TRAINING_UNCHECK = ("eval_at_start", "eval_final")

# Is a plotly figure inside (or at) this element drawn with data? ``min_points``: some trace has that many points.
PLOT_DRAWN = """(el, minPoints) => {
  const g = el.classList.contains('js-plotly-plot') ? el : el.querySelector('.js-plotly-plot');
  if (!g || !Array.isArray(g.calcdata)) return false;
  const num = v => typeof v === 'number' && isFinite(v);
  // calcdata: plotly's computed points per trace (the figure's arrays may come base64-encoded)
  return g.calcdata.some(cd => cd.filter(p => num(p.x) || num(p.y) || num(p.s)).length >= minPoints);
}"""


# ---------------------------------------------------------------- the app: start, wait, always stop


def free_port(start: int) -> int:
    """The first free 127.0.0.1 port from ``start`` on (the D helper's range is 7941–7949), else any free one."""
    for port in range(start, start + 9):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int, tmp: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in LOCAL_ONLY_UNSET}
    env.update(
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        GRADIO_ANALYTICS_ENABLED="False",
        RLHF_DEMO_RUNS=str(tmp / "runs"),
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(ROOT),
    )
    log = open(tmp / "app.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_app(proc: subprocess.Popen, url: str, tmp: Path, timeout: float = 180) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}:\n{(tmp / 'app.log').read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"the app did not answer at {url} within {timeout:.0f} s")


def stop_app(proc: subprocess.Popen) -> None:
    """SIGTERM to the app's process group, SIGKILL after 15 s."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------- finding things, clipping, saving


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()
    page.wait_for_timeout(500)


def panel(page):
    """The open tab's content."""
    return page.locator("[role=tabpanel]:visible").first


def button(scope, start: str):
    """The first visible button whose text begins with ``start``."""
    import re

    return scope.get_by_role("button", name=re.compile(rf"^\s*{re.escape(start)}")).locator("visible=true").first


def drawn_plots(scope, min_points: int = 1) -> list:
    """The visible plotly figures in ``scope`` that hold data, largest first."""
    found = []
    for g in scope.locator(".js-plotly-plot").all():
        if g.is_visible() and g.evaluate(PLOT_DRAWN, min_points):
            box = g.bounding_box()
            found.append((box["width"] * box["height"], g))
    return [g for _, g in sorted(found, key=lambda x: -x[0])]


def wait_for_plot(scope, min_points: int = 1, timeout: float = 180, prefer: str = "") -> object:
    """The figure ``prefer`` (an element id) once drawn, where the page has it; else the largest drawn figure."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        target = scope.locator(prefer) if prefer else None
        if target is not None and (target.count() or time.monotonic() - t0 < 30):  # it may appear late
            plots = drawn_plots(target, min_points) if target.count() else []
        else:
            plots = drawn_plots(scope, min_points)
        if plots:
            return plots[0]
        time.sleep(1)
    raise TimeoutError(f"no figure with ≥ {min_points} points within {timeout:.0f} s")


def union(*locators, pad: int = 8) -> dict:
    """The region covering every locator, in viewport coordinates (as ``bounding_box`` gives them)."""
    boxes = [loc.bounding_box() for loc in locators if loc is not None]
    boxes = [b for b in boxes if b]
    x0 = min(b["x"] for b in boxes) - pad
    y0 = min(b["y"] for b in boxes) - pad
    x1 = max(b["x"] + b["width"] for b in boxes) + pad
    y1 = max(b["y"] + b["height"] for b in boxes) + pad
    return {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0}  # viewport coordinates: may be < 0 once scrolled


def crop_box(page, box: dict, max_height: int = MAX_CLIP_HEIGHT, keep: str = "top") -> tuple[int, int, int, int]:
    """``box`` (viewport coordinates, as ``bounding_box`` gives) in page coordinates, at most ``max_height``
    tall (its top or its bottom kept), as a PIL crop box (left, top, right, bottom)."""
    sx, sy = page.evaluate("[window.scrollX, window.scrollY]")
    x0, y0 = box["x"] + sx, box["y"] + sy
    x1, y1 = x0 + box["width"], y0 + box["height"]
    if y1 - y0 > max_height:
        y0, y1 = (y1 - max_height, y1) if keep == "bottom" else (y0, y0 + max_height)
    return round(x0), round(y0), round(x1), round(y1)


def save(png: bytes, name: str, crop: tuple[int, int, int, int] | None = None) -> Path:
    """Write ``docs/img/NAME.png`` (cropped to ``crop``) under MAX_BYTES: as shot, else quantised to 256
    colours, else downscaled too."""
    img = Image.open(io.BytesIO(png)).convert("RGB")
    if crop:
        img = img.crop((max(0, crop[0]), max(0, crop[1]), min(img.width, crop[2]), min(img.height, crop[3])))
    path = OUT / f"{name}.png"
    OUT.mkdir(parents=True, exist_ok=True)
    scale = 1.0
    while True:
        im = img if scale == 1.0 else img.resize((int(img.width * scale), int(img.height * scale)), Image.LANCZOS)
        for candidate in (im, im.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)):
            buf = io.BytesIO()
            candidate.save(buf, format="PNG", optimize=True)
            if buf.tell() < MAX_BYTES:
                path.write_bytes(buf.getvalue())
                print(f"{path.relative_to(ROOT)}: {candidate.width}×{candidate.height}, {buf.tell() / 1000:.0f} KB", flush=True)
                return path
        scale *= 0.85


def shoot(page, name: str, box: dict, max_height: int = MAX_CLIP_HEIGHT, keep: str = "top") -> Path:
    """Shoot ``box`` (viewport coordinates) widened to the page's content width (the tab bar's): a full-page
    shot, cropped (Playwright's ``clip`` mixes viewport and page coordinates once the page has scrolled)."""
    bar = page.get_by_role("tablist").first.bounding_box()
    if bar:
        x0, x1 = min(box["x"], bar["x"] - 8), max(box["x"] + box["width"], bar["x"] + bar["width"] + 8)
        box = {**box, "x": x0, "width": x1 - x0}
    crop = crop_box(page, box, max_height, keep)  # measured and shot with the page where it is
    return save(page.screenshot(full_page=True), name, crop)


# ---------------------------------------------------------------- the pictures


def playground(page, ctx) -> None:
    open_tab(page, "Playground")
    tab = panel(page)
    button(tab, "Generate").click()
    bars = wait_for_plot(tab, prefer="#pg-bars")  # the token bars: the next-token candidates of a step
    page.wait_for_timeout(1500)  # the rest of the outputs settle
    shoot(page, "playground", union(page.get_by_role("tablist").first, bars))


def kl(page, ctx) -> None:
    open_tab(page, "KL")
    tab = panel(page)
    button(tab, "Compute KL").click()
    plot = wait_for_plot(tab, prefer="#kl-per-token-plot")
    page.wait_for_timeout(1500)
    shoot(page, "kl", union(tab.locator(".block").locator("visible=true").first, plot))


def feedback(page, ctx) -> None:
    open_tab(page, "Feedback")
    tab = panel(page)
    b = button(tab, "B is better")
    # a pair is there when the tab opens: wait until both responses hold text
    page.wait_for_function(
        "() => [...document.querySelectorAll('[role=tabpanel] textarea')].filter(t => t.offsetParent && t.value.trim()).length >= 2",
        timeout=180_000,
    )
    page.wait_for_timeout(500)
    shoot(page, "feedback", union(page.get_by_role("tablist").first, b, button(tab, "Skip")), max_height=900)


def runs(page, ctx) -> None:
    open_tab(page, "Runs")
    tab = panel(page)
    plot = wait_for_plot(tab, timeout=60, prefer="#runs-frontier")  # the frontier of the shipped examples
    page.wait_for_timeout(1000)
    first = tab.locator(".block").locator("visible=true").first
    shoot(page, "runs", union(first, plot))


def theory(page, ctx) -> None:
    open_tab(page, "Theory")
    tab = panel(page)
    button(tab, "Sample candidates").click()
    plot = wait_for_plot(tab, prefer="#th-pistar-plot")  # π* beside π_ref
    page.wait_for_timeout(1500)
    beside = drawn_plots(tab.locator("#th-curves-plot"))  # expected reward and KL against β
    shoot(page, "theory", union(tab.locator(".block").locator("visible=true").first, plot, *beside[:1]), max_height=1100)


def teacher(page, ctx) -> None:
    tab = page.get_by_role("tab", name="Teacher", exact=True)
    if tab.count() == 0 or not tab.first.is_visible():
        print("teacher: no Teacher tab in local mode: skipped", flush=True)
        return
    open_tab(page, "Teacher")
    shoot(page, "teacher", union(panel(page)), max_height=900)


def _field(scope, name: str):
    """A setting's widget: its element id from the config form (``ppo-batch-size``)."""
    return scope.locator(f"#ppo-{name.replace('_', '-')}").first


OPEN_GROUPS = """(titles) => {
  let opened = 0;
  for (const head of document.querySelectorAll('[role=tabpanel] button.label-wrap')) {
    const title = (head.querySelector('span') || head).textContent.trim();
    if (titles.includes(title) && !head.classList.contains('open') && head.offsetParent) { head.click(); opened++; }
  }
  return opened;
}"""


def open_settings(page) -> None:
    """Open the closed accordions that hold PPO's settings (their titles: the knobs' groups); Gradio renders a
    closed accordion's children only once it opens."""
    from rlhf_demo.ppo.config import PPOConfig  # metadata only: no torch

    titles = sorted({k.metadata["group"] for k in PPOConfig.knobs() if k.metadata.get("group")})
    page.evaluate(OPEN_GROUPS, titles)
    page.wait_for_timeout(800)


def _set(page, scope, name: str, value) -> None:
    field = _field(scope, name)
    if field.count() == 0:
        print(f"training: no widget for {name}: left at the preset's value", flush=True)
        return
    if isinstance(value, bool):
        box = field.locator("input[type=checkbox]").first
        box.set_checked(value)
    else:
        box = field.locator("input, textarea").first
        box.fill(str(value))
        box.press("Tab")


def training(page, ctx) -> None:
    open_tab(page, "Training")
    tab = panel(page)
    ppo = tab.get_by_role("radio", name="PPO", exact=True)
    if ppo.count():
        ppo.first.check()
    open_settings(page)
    for name, value in TRAINING_SETTINGS.items():
        _set(page, tab, name, value)
    for name in TRAINING_UNCHECK:
        _set(page, tab, name, False)
    page.evaluate("window.scrollTo(0, 0)")
    start = button(tab, "Start")
    start.click()
    t0 = time.monotonic()
    runs_dir = ctx["runs"]
    while updates(runs_dir) < ctx["updates"]:
        if time.monotonic() - t0 > 420:
            raise TimeoutError(f"the PPO run wrote {updates(runs_dir)} updates in 7 minutes")
        time.sleep(1)
    plot = wait_for_plot(tab, min_points=ctx["updates"], timeout=60)  # the live view redraws on a timer
    page.wait_for_timeout(2000)
    box = union(page.get_by_role("tablist").first, start, plot)
    if box["height"] > MAX_CLIP_HEIGHT:  # Start far above the curves: keep the curves and what sits just above them
        box = union(plot)
        box["y"] -= 160
        box["height"] += 160
    shoot(page, "training", box, keep="bottom")
    button(tab, "Stop").click()
    page.wait_for_timeout(3000)


def updates(runs_dir: Path) -> int:
    """Updates written so far by the run(s) in ``runs_dir`` (their metrics.jsonl lines)."""
    n = 0
    for m in runs_dir.glob("*/metrics.jsonl"):
        records = []
        for line in m.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:  # a line being written
                continue
        n = max(n, sum(1 for r in records if "reward_mean" in r))  # update records (an evaluation has eval/ keys only)
    return n


SHOTS = {"playground": playground, "kl": kl, "feedback": feedback, "runs": runs, "theory": theory, "teacher": teacher, "training": training}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=sorted(SHOTS), help="only these pictures (default: all)")
    ap.add_argument("--port", type=int, default=7941, help="first port to try (127.0.0.1)")
    ap.add_argument("--updates", type=int, default=6, help="training: PPO updates plotted before the shot (≥ 2)")
    ap.add_argument("--chromium", default=CHROMIUM)
    args = ap.parse_args()
    if args.updates < 2:
        ap.error("--updates: at least 2 (a curve needs two points)")
    names = [n for n in SHOTS if not args.only or n in args.only]

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)  # unwinds through the finally blocks: the app and browser are stopped

    signal.signal(signal.SIGTERM, on_signal)
    tmp = Path(tempfile.mkdtemp(prefix="rlhf-shots-"))
    port = free_port(args.port)
    url = f"http://127.0.0.1:{port}/"
    proc = start_app(port, tmp)
    failed = []
    try:
        wait_for_app(proc, url, tmp)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            try:
                for name in names:
                    page = browser.new_page(viewport=VIEWPORT)
                    page.set_default_timeout(60_000)
                    try:
                        page.goto(url)
                        page.get_by_role("tab", name="Playground", exact=True).wait_for(timeout=60_000)
                        t0 = time.monotonic()
                        SHOTS[name](page, {"runs": tmp / "runs", "updates": args.updates})
                        print(f"{name}: {time.monotonic() - t0:.1f} s", flush=True)
                    except Exception as e:  # noqa: BLE001 - one picture failing leaves the others
                        failed.append(name)
                        page.screenshot(path=str(tmp / f"{name}-failed.png"), full_page=True)
                        print(f"{name}: FAILED: {type(e).__name__}: {e} (page: {tmp / f'{name}-failed.png'})", flush=True)
                    finally:
                        page.close()
            finally:
                browser.close()
    finally:
        stop_app(proc)
    print(f"app log: {tmp / 'app.log'}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
