"""Benchmark: a class of N students pressing Generate in the Playground at the same moment.

    .venv/bin/python bench/load_class.py [--students 1 10 30] [--timeout 300] [--mix]
    .venv/bin/python bench/load_class.py --url http://127.0.0.1:7860 [--pid SERVER_PID] [--mix] [--train]

Each student is a thread with its own ``gradio_client.Client`` (its own session), connected first and
with its page "loaded" (``/toy_reset``, what a page load runs: Gradio creates the session's state then);
then all call ``/generate`` at once with the Playground's default settings (20 new tokens; student i
uses seed i). The app is launched in-process on 127.0.0.1 through ``rlhf_demo.ui.app.launch`` (as
``python app.py`` does: torch threads set once), or ``--url`` points at a running one (127.0.0.1 only).

Prints, for each N: p50 / p95 / max latency, errors, and the server's peak RSS during that round
(VmHWM, reset before each round; in-process from /proc/self, else /proc/PID with ``--pid``), with
ratios against baselines measured in the same run: one student alone, and plain ``model.generate``
of the same prompt and settings. It also prints the core check behind the single-student figure:
the Playground's batched path (``Batcher.generate``, one request) against plain ``model.generate``,
both making exactly 20 tokens, interleaved (target ≤ 1.10).

``--mix``: every second student presses another tab's button instead (KL tab ``/kl_tokens``, Theory
tab ``/theory_candidates`` and ``/toy_step``, with their defaults); latencies are then listed per endpoint.
A benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from machine import describe  # noqa: E402

PROMPT = "The movie was"
DEFAULTS = dict(
    model="default",
    strategy="sample",
    temperature=0.8,
    top_k=40,
    top_p=0.95,
    min_p=0.0,
    repetition_penalty=1.0,
    no_repeat_ngram_size=0,
    num_beams=4,
    max_new_tokens=20,
    min_new_tokens=0,
    num_samples=1,
    word_bias="",
    chat_template=False,
    reward="vader-positive",
)  # the Playground's widgets as a page opens
MIX = ["/kl_tokens", "/theory_candidates", "/toy_step"]


def press(client, endpoint: str, seed: int):
    if endpoint == "/generate":
        return client.submit(prompt=PROMPT, seed=seed, **DEFAULTS, api_name="/generate")
    return client.submit(api_name=endpoint)  # every other input at its widget's default


def peak_rss_mb(pid: int | None) -> float | None:
    try:
        status = Path(f"/proc/{pid or 'self'}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
    except (OSError, AttributeError):
        return None


def reset_peak_rss(pid: int | None) -> None:
    try:
        Path(f"/proc/{pid or 'self'}/clear_refs").write_text("5")  # Linux: resets VmHWM to the current RSS
    except OSError:
        pass


def one_round(url: str, n: int, timeout: float, mix: bool) -> dict:
    """N students connect, then press at once; latency of each from the common start."""
    from gradio_client import Client

    clients = [Client(url, verbose=False) for _ in range(n)]
    for c in clients:  # each student's page is open: its session exists (the page load runs the Theory tab's reset)
        c.predict(api_name="/toy_reset")
    endpoints = [MIX[(i // 2) % len(MIX)] if mix and i % 2 else "/generate" for i in range(n)]
    barrier, results = threading.Barrier(n + 1), [None] * n
    deadline = [0.0]

    def student(i):
        barrier.wait()
        t0 = time.perf_counter()
        try:
            press(clients[i], endpoints[i], i).result(timeout=max(1.0, deadline[0] - time.monotonic()))
            results[i] = (endpoints[i], time.perf_counter() - t0, None)
        except Exception as exc:  # noqa: BLE001 - counted and shown
            results[i] = (endpoints[i], time.perf_counter() - t0, f"{type(exc).__name__}: {str(exc)[:120]}")

    threads = [threading.Thread(target=student, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline[0] = time.monotonic() + timeout
    t0 = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join(timeout=max(0.0, deadline[0] + 5 - time.monotonic()))
    wall = time.perf_counter() - t0
    for i, r in enumerate(results):
        if r is None:
            results[i] = (endpoints[i], wall, "no answer within --timeout")
    for c in clients:
        try:
            c.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
    return {"results": results, "wall": wall}


class RemoteTraining:
    """A PPO run started through the app's ``/train_start`` (docs/api-training.md), watched by polling
    ``/train_status`` once a second: each new step's ``time/update`` (seconds of that update)."""

    SETTINGS = '{"steps": 200, "max_seconds": 300}'

    def __init__(self, url: str, timeout: float):
        import json

        from gradio_client import Client

        self.json, self.client = json, Client(url, verbose=False)  # one session: its run is its own
        self.run = json.loads(self.client.predict(algo="ppo", preset="quick-cpu", settings=self.SETTINGS, api_name="/train_start"))["run"]
        self.times: dict[int, float] = {}
        self.state, self._stop = "waiting", threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        t0 = time.monotonic()
        while not self.times and self.state in ("waiting", "running") and time.monotonic() - t0 < timeout:
            time.sleep(1)  # training for real before the students come

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                st = self.json.loads(self.client.predict(run=self.run, api_name="/train_status"))
            except Exception:  # noqa: BLE001 - a slow answer under load: ask again
                time.sleep(1)
                continue
            self.state = st.get("state", "?")
            t, step = st.get("metrics", {}).get("time/update"), int(st.get("step", 0))
            if t is not None and step > 0:
                self.times[step] = float(t)
            if self.state not in ("waiting", "running"):
                return
            self._stop.wait(1.0)

    def updates(self) -> int:
        return len(self.times)

    def finish(self) -> list[float]:
        """Stop the run; the update times seen (steps missed between two polls are not counted)."""
        self._stop.set()
        self._thread.join(timeout=30)
        try:
            self.client.predict(run=self.run, api_name="/train_stop")
        except Exception:  # noqa: BLE001 - best effort
            pass
        return [self.times[k] for k in sorted(self.times)]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def core_ratio(bundle, reps: int) -> tuple[float, float, float]:
    """Median wall time of plain model.generate and of the Playground's batched path alone (20 tokens each)."""
    import torch

    from rlhf_demo.decoding.batch import Batcher
    from rlhf_demo.decoding.generate import DecodingConfig, encode_prompt, generation_config

    knobs = {k: v for k, v in DEFAULTS.items() if k not in ("model", "word_bias", "chat_template")}
    cfg = DecodingConfig(**{**knobs, "min_new_tokens": 20}, seed=0).validate(bundle.model.config.vocab_size)
    ids = torch.tensor([encode_prompt(bundle.tokenizer, PROMPT, cfg, bundle.context_length).ids])
    batcher = Batcher()

    def plain():
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(0)
            t0 = time.perf_counter()
            bundle.model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=generation_config(cfg, bundle.tokenizer))
            return time.perf_counter() - t0

    def batched():
        t0 = time.perf_counter()
        batcher.generate(bundle, PROMPT, cfg, top_n=10, keep_logits=True)
        return time.perf_counter() - t0

    plain(), batched()  # warm-up
    times = {"plain": [], "batched": []}
    for i in range(reps):
        for fn in (plain, batched) if i % 2 == 0 else (batched, plain):
            times[fn.__name__].append(fn())
    p, b = statistics.median(times["plain"]), statistics.median(times["batched"])
    return p, b, b / p


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, nargs="+", default=[1, 10, 30])
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds each round may take (hard limit for every student)")
    ap.add_argument("--url", default=None, help="a running app on 127.0.0.1 (default: launch one in this process)")
    ap.add_argument("--pid", type=int, default=None, help="with --url: the server's process id, for its peak RSS")
    ap.add_argument("--mix", action="store_true", help="every second student uses the KL or Theory tab instead")
    ap.add_argument("--reps", type=int, default=5, help="repetitions of each baseline")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of each N (one line each: the machine's noise shows)")
    ap.add_argument(
        "--train",
        action="store_true",
        help="a PPO run (quick-cpu preset, at most 300 s) trains during the rounds: in-process through the app's "
        "queue, with --url through /train_start (its update times from /train_status)",
    )
    args = ap.parse_args()
    if any(n < 1 or n > 64 for n in args.students) or not 1 <= args.rounds <= 10:
        ap.error("--students: 1 to 64 each; --rounds: 1 to 10")
    if args.url and urlparse(args.url).hostname != "127.0.0.1":
        ap.error("--url must be on 127.0.0.1")

    demo, pid = None, args.pid
    if args.url:
        url = args.url.rstrip("/")
    else:
        from rlhf_demo.ui.app import build_demo, launch

        demo = build_demo()
        launch(demo, server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
        url, pid = demo.local_url.rstrip("/"), None
    import torch

    from rlhf_demo.models.loading import REGISTRY

    print(f"machine: {describe()} · torch {torch.get_num_threads()} threads, {torch.get_num_interop_threads()} inter-op")
    print(f"server: {url} ({'in this process' if demo else f'pid {pid}' if pid else 'pid unknown: no RSS'})")
    from gradio_client import Client

    solo = Client(url, verbose=False)
    press(solo, "/generate", 0).result(timeout=args.timeout)  # loads the model in the server
    bundle = REGISTRY.get("default")  # in-process: the server's own copy
    t_plain, t_batched, ratio = core_ratio(bundle, args.reps)
    alone = []
    for i in range(args.reps):
        t0 = time.perf_counter()
        press(solo, "/generate", i).result(timeout=args.timeout)
        alone.append(time.perf_counter() - t0)
    t_alone = statistics.median(alone)
    print(
        f"\nbaselines (median of {args.reps}): plain model.generate {t_plain:.2f} s · Playground batched path alone "
        f"{t_batched:.2f} s (ratio {ratio:.3f}, target ≤ 1.10) · one student alone through Gradio {t_alone:.2f} s "
        f"({t_alone / t_plain:.2f}× plain)\n"
    )
    job = watch = None
    if args.train and demo is None:
        watch = RemoteTraining(url, args.timeout)
        print(f"a PPO run trains in the app through /train_start meanwhile (quick-cpu, batch 32): {watch.updates()} update(s) so far")
    if args.train and demo is not None:
        import tempfile

        from rlhf_demo.ppo.config import PPOConfig
        from rlhf_demo.ppo.trainer import PPOTrainer
        from rlhf_demo.training.queue import QUEUE

        cfg = PPOConfig.preset("quick-cpu", max_seconds=300.0, steps=200).validate()
        job = QUEUE.submit(
            "bench",
            "ppo",
            Path(tempfile.mkdtemp(prefix="rlhf-load-")) / "ppo",
            lambda stop: PPOTrainer(cfg, stop=stop),
            budget_s=cfg.max_seconds,
            total_steps=cfg.steps,
        )
        t0 = time.monotonic()
        while not job.records and time.monotonic() - t0 < 300:  # training for real before the students come
            time.sleep(1)
        print(f"a PPO run trains in the app's queue meanwhile (quick preset, batch 32): {len(job.records)} update(s) so far")
    print(
        f"{'students':>8} {'endpoint':>18} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'errors':>6} {'peak RSS MB':>11} "
        f"{'p95/alone':>9} {'p95/plain':>9} {'wall s':>7}"
    )
    for n in [n for n in args.students for _ in range(args.rounds)]:
        reset_peak_rss(pid)
        r = one_round(url, n, args.timeout, args.mix)
        rss = peak_rss_mb(pid)
        for endpoint in sorted({e for e, _, _ in r["results"]}):
            rows = [x for x in r["results"] if x[0] == endpoint]
            ok = [t for _, t, err in rows if err is None]
            errors = [err for _, _, err in rows if err is not None]
            if ok:
                p50, p95, mx = pct(ok, 0.5), pct(ok, 0.95), max(ok)
                print(
                    f"{n:>8} {endpoint:>18} {p50:>7.2f} {p95:>7.2f} {mx:>7.2f} {len(errors):>6} "
                    f"{(f'{rss:.0f}' if rss else 'n/a'):>11} {p95 / t_alone:>9.2f} {p95 / t_plain:>9.2f} {r['wall']:>7.1f}"
                )
            else:
                print(f"{n:>8} {endpoint:>18} {'-':>7} {'-':>7} {'-':>7} {len(errors):>6}")
            for err in sorted(set(errors))[:3]:
                print(f"{'':>10}error: {err}")
    if watch is not None:
        times = watch.finish()
        print(
            f"\nthe training (via /train_status): {len(times)} updates seen, "
            + (f"{statistics.mean(times):.2f} s each on average (max {max(times):.2f})" if times else "no update time reported")
        )
    if job is not None:
        times = [r["time/update"] for r in job.records if "time/update" in r]
        print(
            f"\nthe training: {len(times)} updates during the benchmark, {statistics.mean(times):.2f} s each on average "
            f"(max {max(times):.2f}); peak RSS of the whole server {peak_rss_mb(None):.0f} MB"
        )
        job.stop_event.set()
    if demo is not None:
        demo.close()
    sys.stdout.flush()
    os._exit(0)  # gradio_client threads of a timed-out round must not keep the process alive


if __name__ == "__main__":
    raise SystemExit(main())
