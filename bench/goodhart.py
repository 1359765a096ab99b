"""Goodhart that shows: per seed, preference pairs labelled by the gold (``data/goodhart.py``: what the
labeller really wanted, positive + on topic − 2 × repetition + fluency + relevance, the last two the
reference model's mean log-probability per response token and how much more likely the response's own
opening makes it), a reward model on them (the *proxy*, reward-model preset ``goodhart``), then PPO on the
proxy (PPO preset ``goodhart``: lr 2e-3, batch 16) twice: with β = 0 and no KL budget for the preset's
220 s, and with the preset's β (0.03) and KL budget (5.5 nats) for 120 s (``HELD_SECONDS``). The gold is
scored on the same texts at every update and every held-out evaluation, never trained on (Gao et al.
2022, "Scaling Laws for Reward Model Overoptimization", https://arxiv.org/abs/2210.10760).

    flock /tmp/rlhf-cpu.lock .venv/bin/python bench/goodhart.py --seeds 0 1 2 --shipped-pairs   # ≈ 12 min a seed
    flock /tmp/rlhf-cpu.lock .venv/bin/python bench/goodhart.py --seeds 0 --only pairs rm beta0
    flock /tmp/rlhf-cpu.lock .venv/bin/python bench/goodhart.py --seeds 0 --only preset
    .venv/bin/python bench/goodhart.py --seeds 0 1 2 --json bench/results/goodhart/summary.json

Held-out figures (the same 32 × 2 held-out prompts at every evaluation and at the
end: ``evaluate.EvalConfig``; the preset evaluates every 6 updates), averaged over each 3 consecutive evaluations (``plots.overopt.heldout_windows``): the gold's **peak**
(the best window), the gold **at the end** (the last window), the proxy at the peak and at the end, and
the held-out KL at the end. Criteria (issue 27): with β = 0 the gold falls by ≥ 0.15 from its peak while
the proxy rises (proxy at the end above the proxy at the peak), for ≥ 2 of the seeds; with the preset's
β the gold at the end is above the β = 0 run's, for each seed.

Folders: ``bench/results/goodhart/seedS/`` (``pairs.jsonl``, ``rm``, ``ppo-beta0``, ``ppo-preset``); a
finished piece is reused, so a seed can be trained in pieces (``--only``) and the table printed later.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from machine import describe  # noqa: E402  (bench/machine.py, beside this script)

from rlhf_demo.data import goodhart  # noqa: E402

OUT = ROOT / "bench" / "results" / "goodhart"
PIECES = ("pairs", "rm", "beta0", "preset")
FALL = 0.15
HELD_SECONDS = 120
"""Training time of the penalised run (the preset's β and KL budget): its budget holds it near 5.5 nats
after about a minute (every later update past it is undone), so the preset's full 220 s, which the β = 0
run needs to collapse, would only add undone updates; this keeps a seed within 12 minutes."""


def finished(run: Path) -> bool:
    return (run / "summary.json").exists()


def cli(argv: list[str]) -> float:
    """``python -m rlhf_demo ARGV`` in this process; the seconds it took."""
    from rlhf_demo.cli.main import main

    t0 = time.perf_counter()
    rc = main(argv)
    if rc != 0:
        raise SystemExit(f"`{' '.join(argv)}` failed (exit {rc})")
    return time.perf_counter() - t0


def train(argv: list[str], run: Path) -> float:
    if finished(run):
        return 0.0
    if run.exists():
        raise SystemExit(f"{run} exists but has no summary.json (interrupted?): remove it and run again")
    return cli(["train", "--quiet", "--out", str(run)] + argv)


def make_seed(seed: int, only: list[str] | None, seconds: float | None, timings: dict, shipped: bool = False) -> Path:
    """Train what is missing of one seed (or only the pieces ``only``); seconds per piece go to ``timings``.
    ``shipped``: the reward model trains on the shipped pairs (seed 0's labels, ``goodhart.PAIRS``) instead
    of pairs labelled for this seed (labelling takes ~6.5 minutes: 4 samples for each of 540 prompts, each
    scored by the gold, whose fluency and relevance are three passes of the reference model)."""
    only = only or PIECES
    d = OUT / f"seed{seed}"
    d.mkdir(parents=True, exist_ok=True)
    pairs, rm = (goodhart.PAIRS if shipped else d / "pairs.jsonl"), d / "rm"
    common = ["--seed", str(seed)] + (["--max-seconds", str(seconds)] if seconds else [])
    if "pairs" in only and not pairs.exists():
        timings["pairs"] = cli(["preferences", "--quiet", "--out", str(pairs), "--reward", goodhart.GOLD, "--seed", str(seed)])
    if "rm" in only:
        timings["rm"] = train(["--algo", "reward", "--preset", "goodhart", "--preferences", str(pairs), "--seed", str(seed)], rm)
    held = [] if seconds else ["--max-seconds", str(HELD_SECONDS)]
    for piece, extra in (("beta0", ["--beta", "0", "--kl-budget", "0"]), ("preset", held)):
        if piece in only:
            if not finished(rm):
                raise SystemExit(f"seed {seed}: train the reward model first (--only rm)")
            timings[piece] = train(["--algo", "ppo", "--preset", "goodhart", "--reward", f"rm:{rm}"] + common + extra, d / f"ppo-{piece}")
    return d


def run_figures(run: Path) -> dict | None:
    """Held-out peak and end of one PPO run (3-evaluation windows), or None when it is not there."""
    from rlhf_demo.plots.overopt import heldout_windows
    from rlhf_demo.runs.folder import read_json, read_metrics

    if not finished(run):
        return None
    df = read_metrics(run)
    win = heldout_windows(df)
    if not len(win):
        return {"evaluations": int(df["eval/kl"].notna().sum()) if "eval/kl" in df else 0}
    i = int(win["gold"].values.argmax())
    peak, end = win.iloc[i], win.iloc[-1]
    last = df.dropna(subset=["eval/kl"]).iloc[-1]
    return {
        "evaluations": len(win) + 2,
        "gold_start": float(df.dropna(subset=["eval/gold_reward_mean"]).iloc[0]["eval/gold_reward_mean"]),
        "gold_peak": float(peak["gold"]),
        "kl_at_peak": float(peak["kl"]),
        "proxy_at_peak": float(peak["proxy"]),
        "gold_end": float(end["gold"]),
        "proxy_end": float(end["proxy"]),
        "kl_end": float(end["kl"]),
        "fall": float(peak["gold"] - end["gold"]),
        "distinct2_end": float(last.get("eval/distinct2", float("nan"))),
        "on_topic_end": float(last.get("eval/on_topic", float("nan"))),
        "updates": int(df["step"].max()),
        "train_s": float(read_json(run / "summary.json").get("time_s", 0.0)),
        "last_samples": last_eval_samples(run, int(last["step"])),
    }


def last_eval_samples(run: Path, step: int, n: int = 4) -> list[str]:
    """The first ``n`` held-out responses of the evaluation at ``step`` (samples.jsonl, kind "eval")."""
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["response"] for r in rows if r.get("kind") == "eval" and r.get("step") == step][:n]


def verdict(seeds: dict[int, dict]) -> dict:
    """The issue's criteria per seed and overall (yes/no)."""
    falls, above = {}, {}
    for s, r in seeds.items():
        b, p = r.get("beta0"), r.get("preset")
        falls[s] = bool(b and "fall" in b and b["fall"] >= FALL and b["proxy_end"] > b["proxy_at_peak"])
        above[s] = bool(b and p and "gold_end" in b and "gold_end" in p and p["gold_end"] > b["gold_end"])
    need = min(2, len(seeds))
    return {
        "beta0_gold_falls": falls,
        "preset_end_above_beta0": above,
        "beta0_falls_for_enough_seeds": sum(falls.values()) >= need,
        "preset_above_each_seed": all(above.values()) and bool(above),
    }


def yes(b: bool) -> str:
    return "yes" if b else "no"


def table(seeds: dict[int, dict]) -> str:
    lines = [
        "| seed | run | held-out gold: start → peak (KL) | gold at the end | fall | proxy at peak → end | KL at the end | "
        "on-topic, distinct-2 at the end | updates, training s |",
        "|---" * 9 + "|",
    ]
    for s, r in seeds.items():
        for piece, name in (("beta0", "β = 0"), ("preset", "preset β 0.03, budget 5.5")):
            f = r.get(piece)
            if not f or "gold_peak" not in f:
                lines.append(f"| {s} | {name} | {'not trained' if not f else str(f['evaluations']) + ' evaluations'} |||||||")
                continue
            lines.append(
                f"| {s} | {name} | {f['gold_start']:+.2f} → {f['gold_peak']:+.2f} ({f['kl_at_peak']:.1f}) | {f['gold_end']:+.2f} | "
                f"{f['fall']:.2f} | {f['proxy_at_peak']:+.2f} → {f['proxy_end']:+.2f} | {f['kl_end']:.1f} | "
                f"{f['on_topic_end']:.2f}, {f['distinct2_end']:.2f} | {f['updates']}, {f['train_s']:.0f} |"
            )
    return "\n".join(lines)


def screenshot(seed: int, png: Path, port: int = 7971) -> None:
    """The Runs tab's over-optimisation panel with seed ``seed``'s two PPO runs (the app in Chromium on
    ``port``, its runs folder a temporary one linking the two runs), cropped to the panel, as ``png``."""
    import re
    import tempfile

    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT / "scripts"))
    import screenshots as shots  # scripts/screenshots.py: start, wait for and stop the app; crop and save

    tmp = Path(tempfile.mkdtemp(prefix="goodhart-shot-"))
    names = {f"goodhart-seed{seed}-beta0": "ppo-beta0", f"goodhart-seed{seed}-preset": "ppo-preset"}
    (tmp / "runs").mkdir()
    for name, piece in names.items():
        (tmp / "runs" / name).symlink_to(OUT / f"seed{seed}" / piece)
    proc = shots.start_app(port, tmp)
    try:
        url = f"http://127.0.0.1:{port}/"
        shots.wait_for_app(proc, url, tmp)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shots.CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport=shots.VIEWPORT)
            page.goto(url)
            shots.open_tab(page, "Runs")
            tab = shots.panel(page)
            shots.wait_for_plot(tab, timeout=60, prefer="#runs-frontier")
            page.wait_for_timeout(1500)  # the tab's own first selection lands first
            pick = page.locator("#runs-pick")
            if pick.locator(".remove-all").count():
                pick.locator(".remove-all").first.click()  # empty the selection
            box = pick.locator("input").first
            for name in names:
                box.fill(name)
                box.press("Enter")
            for _ in range(3):  # anything else still chosen (the shipped example, which may land late) goes
                page.wait_for_timeout(1000)
                others = [t for t in pick.locator(".token").all() if t.inner_text().strip() not in names]
                if not others:
                    break
                for token in others:
                    token.locator(".token-remove").first.click()
            page.locator("body").click(position={"x": 5, "y": 5})
            page.locator("#runs-refresh").click()  # every figure of the tab redrawn for the selection
            page.wait_for_function(  # the panel redrawn for this selection (an earlier drawing has points too)
                "() => { const t = document.querySelector('#runs-overopt')?.innerText || '';"
                " return t.includes('goodhart-seed') && !t.includes('example-'); }",
                timeout=60_000,
            )
            page.wait_for_timeout(1500)
            plot = shots.wait_for_plot(page.locator("#runs-overopt"), min_points=3, timeout=60)
            plot.scroll_into_view_if_needed()
            page.wait_for_timeout(1500)
            legend = page.locator("#runs-overopt").first
            shots.OUT = png.parent
            shots.save(page.screenshot(full_page=True), png.stem, shots.crop_box(page, shots.union(legend), max_height=900))
            chosen = page.locator("#runs-pick").inner_text()
            if not all(re.search(re.escape(n), chosen) for n in names):
                print(f"warning: the selection shows {chosen!r}", file=sys.stderr)
            browser.close()
    finally:
        shots.stop_app(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--only", choices=PIECES, nargs="+", help="train only these pieces of each seed, print nothing else")
    ap.add_argument("--shipped-pairs", action="store_true", help="train each seed's reward model on the shipped pairs (seed 0's)")
    ap.add_argument("--seconds", type=float, default=None, help="training-time budget of each PPO run (default: the preset's)")
    ap.add_argument("--table", action="store_true", help="train nothing: print the table of what is there")
    ap.add_argument("--json", type=Path, help="write the figures and criteria here")
    ap.add_argument("--screenshot", type=Path, help="only shoot the Runs tab's over-optimisation panel of the first seed's runs here")
    ap.add_argument("--port", type=int, default=7971, help="port of the app the screenshot starts (default 7971)")
    args = ap.parse_args()
    if args.screenshot:
        screenshot(args.seeds[0], args.screenshot.resolve(), args.port)
        return
    seeds, wall = {}, {}
    for s in args.seeds:
        t0, timings = time.perf_counter(), {}
        d = OUT / f"seed{s}" if args.table else make_seed(s, args.only, args.seconds, timings, args.shipped_pairs)
        wall[s] = {"wall_s": time.perf_counter() - t0, **{k: round(v, 1) for k, v in timings.items()}}
        if args.only:
            print(f"seed {s}: {wall[s]}", flush=True)
            continue
        seeds[s] = {"beta0": run_figures(d / "ppo-beta0"), "preset": run_figures(d / "ppo-preset")}
        rm = json.loads((d / "rm" / "summary.json").read_text())
        seeds[s]["rm_heldout_accuracy"] = rm["final_eval"]["accuracy"]
        seeds[s]["seconds"] = wall[s]
    if args.only:
        return
    v = verdict(seeds)
    print(f"machine: {describe()}\ngold: {goodhart.GOLD}\n")
    for s, r in seeds.items():
        print(f"seed {s}: reward model held-out pair accuracy {r['rm_heldout_accuracy']:.3f}; seconds this call {r['seconds']}")
    print()
    print(table(seeds))
    print()
    for s in seeds:
        print(
            f"seed {s}: β = 0 gold falls ≥ {FALL} while the proxy rises: {yes(v['beta0_gold_falls'][s])}; "
            f"preset's end gold above β = 0's: {yes(v['preset_end_above_beta0'][s])}"
        )
    print(f"β = 0 falls for ≥ {min(2, len(seeds))} of {len(seeds)} seeds: {yes(v['beta0_falls_for_enough_seeds'])}")
    print(f"preset above β = 0 for each seed: {yes(v['preset_above_each_seed'])}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": describe(), "gold": goodhart.GOLD, "seeds": seeds, "criteria": v}, indent=1) + "\n")


if __name__ == "__main__":
    main()
