"""Over-optimisation on this CPU: a reward model learned from the shipped pairs (VADER's preferences),
then PPO against it (the *proxy*) with β = 0 and with the default preset, the gold reward (VADER) scored
on the same texts at every update. Prints proxy and gold at KL ≈ 2, 5, 10, 20 nats (Gao et al. 2022,
"Scaling Laws for Reward Model Overoptimization", https://arxiv.org/abs/2210.10760).

    flock /tmp/rlhf-cpu.lock .venv/bin/python bench/overopt.py --only rm         # ≈ 2 min
    flock /tmp/rlhf-cpu.lock .venv/bin/python bench/overopt.py --only no-kl      # ≈ 7 min
    flock /tmp/rlhf-cpu.lock .venv/bin/python bench/overopt.py --only quick-cpu  # ≈ 7 min
    .venv/bin/python bench/overopt.py                                            # the table (trains what is missing)

Run folders go to bench/results/overopt/ (``rm``, ``ppo-no-kl``, ``ppo-quick-cpu``); a finished folder
is reused. KL is the batch's exact KL(π_old‖π_ref) in nats per response (``objective/kl_exact``, the
KL panel's and the budget's); proxy and gold are batch means, smoothed over 3 updates and read where
the smoothed KL first reaches each mark (linear interpolation between the two updates around it).
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

OUT = ROOT / "bench" / "results" / "overopt"
MARKS = (2.0, 5.0, 10.0, 20.0)
KL = "objective/kl_exact"


def finished(run: Path) -> bool:
    return (run / "summary.json").exists()


def train(argv: list[str], run: Path) -> float:
    """``python -m rlhf_demo train ...`` in this process; seconds it took (0 when the run was there)."""
    from rlhf_demo.cli.main import main

    if finished(run):
        return 0.0
    if run.exists():
        raise SystemExit(f"{run} exists but has no summary.json (interrupted?): remove it and run again")
    t0 = time.perf_counter()
    rc = main(["train", "--quiet", "--out", str(run)] + argv)
    if rc != 0:
        raise SystemExit(f"training {run.name} failed (exit {rc})")
    return time.perf_counter() - t0


def at_marks(df, marks=MARKS, window: int = 3) -> list[tuple[float, float, float] | None]:
    """(kl, proxy, gold) where the smoothed batch KL first reaches each mark, or None when it never does."""
    d = df.dropna(subset=[KL, "reward_mean", "gold_reward_mean"]).sort_values("step")
    sm = d[[KL, "reward_mean", "gold_reward_mean"]].rolling(window, center=True, min_periods=1).mean().reset_index(drop=True)
    out = []
    for m in marks:
        hit = sm.index[sm[KL] >= m]
        if len(hit) == 0:
            out.append(None)
            continue
        i = int(hit[0])
        if i == 0:
            out.append(tuple(float(v) for v in sm.iloc[0]))
            continue
        a, b = sm.iloc[i - 1], sm.iloc[i]
        w = (m - a[KL]) / (b[KL] - a[KL]) if b[KL] != a[KL] else 1.0
        out.append(
            (
                m,
                float(a["reward_mean"] + w * (b["reward_mean"] - a["reward_mean"])),
                float(a["gold_reward_mean"] + w * (b["gold_reward_mean"] - a["gold_reward_mean"])),
            )
        )
    return out


def table(runs: dict[str, Path]) -> str:
    from rlhf_demo.runs.folder import read_json, read_metrics

    lines = [
        "| run | start (update 1): proxy / gold | "
        + " | ".join(f"KL ≈ {m:g}: proxy / gold" for m in MARKS)
        + " | last update: KL, proxy / gold | held-out at the end: KL, proxy / gold | updates, training s |",
        "|---" * (len(MARKS) + 5) + "|",
    ]
    for name, run in runs.items():
        df, summary = read_metrics(run), read_json(run / "summary.json")
        first, last = df.iloc[0], df.dropna(subset=[KL]).iloc[-1]
        cells = [f"{hit[1]:+.2f} / {hit[2]:+.2f}" if hit else "not reached" for hit in at_marks(df)]
        ev = df.dropna(subset=["eval/kl"]).iloc[-1] if "eval/kl" in df and df["eval/kl"].notna().any() else None
        held = f"{ev['eval/kl']:.1f}, {ev['eval/reward_mean']:+.2f} / {ev['eval/gold_reward_mean']:+.2f}" if ev is not None else "—"
        lines.append(
            f"| {name} | {first['reward_mean']:+.2f} / {first['gold_reward_mean']:+.2f} | "
            + " | ".join(cells)
            + f" | {last[KL]:.1f}, {last['reward_mean']:+.2f} / {last['gold_reward_mean']:+.2f} | {held} | "
            f"{int(last['step'])}, {summary.get('time_s', 0):.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("rm", "no-kl", "quick-cpu"), help="train only this piece, print nothing else")
    ap.add_argument("--seconds", type=float, default=360.0, help="training-time budget of each PPO run (default 360)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    rm = OUT / "rm"
    runs = {f"PPO {p} on rm: (β = {'0' if p == 'no-kl' else '0.03, budget 5.5'})": OUT / f"ppo-{p}" for p in ("no-kl", "quick-cpu")}
    if args.only in (None, "rm"):
        s = train(["--algo", "reward", "--seed", str(args.seed)], rm)
        if s:
            print(f"reward model: {s:.0f} s, {json.loads((rm / 'summary.json').read_text())['final_eval']}")
    for p, run in zip(("no-kl", "quick-cpu"), runs.values()):
        if args.only in (None, p):
            if not finished(rm):
                raise SystemExit("train the reward model first: --only rm")
            s = train(
                [
                    "--algo",
                    "ppo",
                    "--preset",
                    p,
                    "--reward",
                    f"rm:{rm}",
                    "--gold-reward",
                    "vader-positive",
                    "--steps",
                    "2000",
                    "--max-seconds",
                    str(args.seconds),
                    "--seed",
                    str(args.seed),
                ],
                run,
            )
            if s:
                print(f"{run.name}: {s:.0f} s")
    if args.only is None:
        rm_eval = json.loads((rm / "summary.json").read_text())
        print(f"machine: {describe()}")
        print(
            f"reward model: held-out pair accuracy {rm_eval['final_eval']['accuracy']:.3f} on "
            f"{rm_eval['final_eval']['n']} pairs, {rm_eval['time_s']:.0f} s of training\n"
        )
        print(table(runs))


if __name__ == "__main__":
    main()
