"""Benchmark: a 50-minute lesson for a class, compressed into a few minutes over loopback.

    flock /tmp/rlhf-cpu.lock .venv/bin/python bench/lesson.py [--students 30] [--json OUT]

The app runs in classroom mode (a teacher key and a class code) in a process of its own, on 127.0.0.1, with
its runs in a temporary folder. A teacher and N students, each a ``gradio_client.Client`` of its own (its own
session) and each its own identity:

1. every page loads (``GET /`` and the client's connection), everyone joins with the class code (``/join``);
   the teacher logs in (``/teacher_login``); the model is warmed by one Generate: ``rss_start_gb``;
2. the teacher says "everyone press ...": all students at once press Generate (the Playground's defaults),
   then Compute on the KL tab, then Sample on the Theory tab (each its own barrier: the worst case);
3. all students start one short PPO training at once (``/train_start``; all of them queue), then each labels
   10 pairs (``/feedback_pair`` + ``/feedback_label``) while the trainings run, and then watches its run
   (``/train_status`` every 2 s) until it ends; one student also makes one Generate at the caps;
4. the teacher pins one run and trains DPO on the class's labels; every session closes; 10 s idle: ``rss_end_gb``;
5. the abuse round (one client): fill the event queue (one session sends 140 events), fill the training queue
   (31 sessions that never joined, and a joined identity starting twice), label as many fake people (sessions
   that never joined, and one identity labelling as fast as it can), guess the teacher key (with spoofed
   ``X-Forwarded-For`` headers) while the teacher logs in from the same address. Each is "refused" when the
   server turned it away and the class's own requests still went through.

Prints per action p50/p95, errors, RSS (start / peak / end), runs started / finished, labels sent / on disk and
each abuse; ``--json OUT`` writes the same as one JSON object. Bounded in count and time; talks only to 127.0.0.1.
A benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from load_class import DEFAULTS  # noqa: E402
from machine import describe  # noqa: E402

TEACHER_KEY = "lesson-teacher-key-" + "k" * 12
CLASS_CODE = "LESSON42"
PROMPT = "The movie was"
GENERATE = DEFAULTS  # the Playground's widgets as a page opens (bench/load_class.py)
AT_CAPS = dict(GENERATE, max_new_tokens=128, num_samples=8)  # the largest the form allows
TRAINING = {"steps": 1, "batch_size": 8, "eval_final": False}  # one short PPO update per student
LESSON_ACTIONS = ("page_load", "join", "generate", "kl", "theory", "label", "train_start", "watch")
TIME_LIMIT_S = 15 * 60


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))] if xs else float("nan")


def proc_kb(pid: int, key: str) -> float:
    m = re.search(rf"{key}:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) if m else 0.0


def as_json(value):
    """An endpoint's one JSON value (a JSON string, or already a dict)."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    return json.loads(value) if isinstance(value, str) else value


class Log:
    """Latencies and errors of every action, thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)
        self.events: list[tuple[str, float, float]] = []  # (action or endpoint, start since the log began, seconds)
        self.t0 = time.perf_counter()

    def timed(self, action: str, fn, *args, tag: str | None = None, **kwargs):
        t0 = time.perf_counter()
        try:
            out = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - counted and shown
            with self.lock:
                self.errors[action].append(f"{type(exc).__name__}: {str(exc)[:160]}")
            return None
        with self.lock:
            self.times[action].append(time.perf_counter() - t0)
            self.events.append((tag or action, round(t0 - self.t0, 3), round(time.perf_counter() - t0, 3)))
        return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(runs: Path, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "RLHF_DEMO_TEACHER_KEY": TEACHER_KEY,
        "RLHF_DEMO_CLASS_CODE": CLASS_CODE,
        "RLHF_DEMO_RUNS": str(runs),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    env.pop("FORWARDED_ALLOW_IPS", None)  # no proxy in front: X-Forwarded-For must not be trusted
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, stdout=open(runs.parent / "server.log", "w"), stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    while time.monotonic() - t0 < 180:
        try:
            urllib.request.urlopen(url + "/", timeout=5).read()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"the app exited: see {runs.parent / 'server.log'}") from None
            time.sleep(1)
    proc.kill()
    raise SystemExit("the app did not answer within 180 s")


class Student:
    def __init__(self, url: str, i: int, log: Log):
        self.url, self.i, self.log = url, i, log
        self.client = None
        self.run = None
        self.labels_sent = 0

    def load_page(self):
        from gradio_client import Client

        def load():
            urllib.request.urlopen(self.url + "/", timeout=60).read()
            self.client = Client(self.url, verbose=False)

        self.log.timed("page_load", load)

    def call(self, action: str, api_name: str, **kw):
        if self.client is None:
            return None
        return self.log.timed(action, lambda: self.client.predict(**kw, api_name=api_name), tag=f"{action} {api_name}")

    def join(self):
        return self.call("join", "/join", class_code=CLASS_CODE, nickname=f"student {self.i}", token="")

    def label(self, n: int):
        for _ in range(n):
            pair = self.call("label", "/feedback_pair")
            if pair is None:
                continue
            pair = as_json(pair)
            choice = "ab"[(self.i + self.labels_sent) % 2]
            if self.call("label", "/feedback_label", pair_id=pair["pair_id"], choice=choice) is not None:
                self.labels_sent += 1
            time.sleep(1.2)  # a person reads the pair before clicking

    def start_training(self):
        out = self.call("train_start", "/train_start", algo="ppo", preset="quick-cpu", settings=json.dumps(TRAINING))
        if out is not None:
            self.run = as_json(out)["run"]

    def watch(self, deadline: float) -> str:
        state = "unknown"
        while self.run and time.monotonic() < deadline:
            out = self.call("watch", "/train_status", run=self.run)
            if out is not None:
                state = as_json(out).get("state", state)
                if state not in ("waiting", "running", "loading"):
                    return state
            time.sleep(2.0)
        return state

    def close(self):
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # noqa: BLE001 - best effort
                pass


def together(people, fn):
    """Everyone does ``fn(person)`` at the same moment (a barrier), each in a thread; waits for all."""
    barrier = threading.Barrier(len(people))

    def go(p):
        barrier.wait()
        fn(p)

    threads = [threading.Thread(target=go, args=(p,), daemon=True) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=TIME_LIMIT_S)


# ----------------------------------------------------------------------------- the abuse round
def abuse_event_queue(url: str, victim) -> bool:
    """One session sends 140 Generate events straight to the queue (no client library); refused when some are
    turned away and a student's Generate meanwhile still answers."""
    from gradio_client import Client

    c = Client(url, verbose=False)
    fn_index = next(d["id"] for d in c.config["dependencies"] if d.get("api_name") == "generate")
    params = c.view_api(return_format="dict", print_info=False)["named_endpoints"]["/generate"]["parameters"]
    values = {"prompt": PROMPT, "seed": 0, **GENERATE}
    data = [values[p["parameter_name"]] for p in params]  # the event's inputs, in its order
    refused = 0
    session = "abuser-" + os.urandom(6).hex()
    for _ in range(140):
        body = json.dumps({"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None}).encode()
        req = urllib.request.Request(url + "/gradio_api/queue/join", body, {"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=10).read()
        except urllib.error.HTTPError:
            refused += 1
        except OSError:
            refused += 1
    t0 = time.perf_counter()
    ok = (
        victim.log.timed("abuse_victim_generate", lambda: victim.client.predict(prompt=PROMPT, seed=1, **GENERATE, api_name="/generate"))
        is not None
    )
    print(
        f"  event queue: {refused} of 140 events refused; a student's Generate meanwhile "
        f"{'answered' if ok else 'FAILED'} in {time.perf_counter() - t0:.1f} s"
    )
    c.close()
    return refused > 0 and ok


def abuse_training_queue(url: str, joined) -> bool:
    """31 sessions that never joined each try to start a training; a joined identity starts a second one."""
    from gradio_client import Client

    accepted = 0
    for _ in range(31):
        c = Client(url, verbose=False)
        try:
            c.predict(algo="ppo", preset="quick-cpu", settings=json.dumps(TRAINING), api_name="/train_start")
            accepted += 1
        except Exception:  # noqa: BLE001 - refused, as it should be
            pass
        c.close()
    twice = 0
    for _ in range(2):
        try:
            joined.client.predict(algo="ppo", preset="quick-cpu", settings=json.dumps({**TRAINING, "steps": 50}), api_name="/train_start")
            twice += 1
        except Exception:  # noqa: BLE001
            pass
    try:
        joined.client.predict(run="", api_name="/train_stop")
    except Exception:  # noqa: BLE001
        pass
    print(f"  training queue: {accepted} of 31 sessions without the class code accepted; a joined identity started {twice} of 2")
    return accepted == 0 and twice <= 1


def abuse_labels(url: str, joined, store: Path) -> bool:
    """Sessions that never joined label (as many 'people'); a joined identity labels as fast as it can."""
    from gradio_client import Client

    before = count_labels(store)
    fake = 0
    for _ in range(8):
        c = Client(url, verbose=False)
        try:
            pair = as_json(c.predict(api_name="/feedback_pair"))
            c.predict(pair_id=pair["pair_id"], choice="a", api_name="/feedback_label")
            fake += 1
        except Exception:  # noqa: BLE001
            pass
        c.close()
    fast = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5:
        try:
            pair = as_json(joined.client.predict(api_name="/feedback_pair"))
            joined.client.predict(pair_id=pair["pair_id"], choice="b", api_name="/feedback_label")
            fast += 1
        except Exception:  # noqa: BLE001
            time.sleep(0.2)
    added = count_labels(store) - before
    print(
        f"  labels: {fake} of 8 from sessions without the class code stored; one identity stored {fast} in 5 s ({added} rows added on disk)"
    )
    return fake == 0 and fast <= 5 + 5 + 1  # a burst of 5, then one a second


def abuse_teacher_key(url: str) -> bool:
    """3 identities each guess 6 wrong keys, every guess with another spoofed X-Forwarded-For; then the
    teacher logs in from the same address. Refused: the guesses were not all evaluated (the spoofed header
    bought no new address) and the teacher's right key went through."""
    from gradio_client import Client

    evaluated = tries = 0
    for who in range(3):
        for k in range(6):
            c = Client(url, verbose=False, headers={"X-Forwarded-For": f"10.0.{who}.{k + 1}"})
            tries += 1
            try:
                joined = as_json(c.predict(class_code=CLASS_CODE, nickname=f"guesser {who}", token=tokens.get(who, ""), api_name="/join"))
                tokens[who] = joined["token"]  # the same identity guesses again from a "new address"
                c.predict(key=f"guess-{who}-{k}", api_name="/teacher_login")
            except Exception as exc:  # noqa: BLE001
                if "not the teacher key" in str(exc).lower():
                    evaluated += 1
            c.close()
    teacher = Client(url, verbose=False)
    ok = True
    try:
        teacher.predict(class_code=CLASS_CODE, nickname="teacher", token="", api_name="/join")
        teacher.predict(key=TEACHER_KEY, api_name="/teacher_login")
    except Exception as exc:  # noqa: BLE001
        ok = False
        print(f"  teacher refused: {exc}")
    teacher.close()
    print(
        f"  teacher key: {evaluated} of {tries} guesses with spoofed X-Forwarded-For evaluated; the teacher's right key "
        f"{'accepted' if ok else 'REFUSED'}"
    )
    return ok and evaluated < tries


tokens: dict[int, str] = {}


def count_labels(store: Path) -> int:
    try:
        return sum(1 for line in store.read_text().splitlines() if line.strip())
    except OSError:
        return 0


# ----------------------------------------------------------------------------- the lesson
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=30)
    ap.add_argument("--labels", type=int, default=10, help="pairs each student labels")
    ap.add_argument("--json", default=None, help="also write the figures as one JSON object to this file")
    ap.add_argument("--no-abuse", action="store_true", help="skip the abuse round")
    ap.add_argument(
        "--no-watch", action="store_true", help="diagnostics: after labelling, each student stops its training instead of watching it end"
    )
    ap.add_argument("--events", default=None, help="also write every timed call (endpoint, start s, seconds) as JSON lines here")
    args = ap.parse_args()
    if not 1 <= args.students <= 40 or not 0 <= args.labels <= 20:
        ap.error("--students: 1 to 40; --labels: 0 to 20")
    t_lesson = time.monotonic()
    deadline = t_lesson + TIME_LIMIT_S
    tmp = Path(tempfile.mkdtemp(prefix="rlhf-lesson-"))
    runs = tmp / "runs"
    runs.mkdir()
    port = free_port()
    server = start_server(runs, port)
    url = f"http://127.0.0.1:{port}"
    pid = server.pid
    print(f"machine: {describe()}\nserver: {url} (pid {pid}, classroom mode, runs in {runs})")
    log = Log()
    try:
        teacher = Student(url, -1, Log())
        teacher.load_page()
        teacher.join()
        teacher.call("teacher", "/teacher_login", key=TEACHER_KEY)
        students = [Student(url, i, log) for i in range(args.students)]
        together(students, Student.load_page)
        together(students, Student.join)
        teacher.call("warm", "/generate", prompt=PROMPT, seed=0, **GENERATE)  # the models load once
        teacher.call("warm", "/kl_tokens")
        teacher.call("warm", "/theory_candidates")
        rss_start = proc_kb(pid, "VmRSS") / 1e6
        print(f"{len(students)} pages loaded and joined; server RSS {rss_start:.2f} GB")

        together(students, lambda s: s.call("generate", "/generate", prompt=PROMPT, seed=s.i, **GENERATE))
        together(students, lambda s: s.call("kl", "/kl_tokens"))
        together(students, lambda s: s.call("theory", "/theory_candidates"))
        together(students, Student.start_training)
        started = [s for s in students if s.run]
        print(f"{len(started)} trainings queued; labelling while they run")

        def label_then_watch(s):
            if s.i == 0:
                s.call("generate_at_caps", "/generate", prompt=PROMPT, seed=0, **AT_CAPS)
            s.label(args.labels)
            if args.no_watch and s.run:
                s.call("stop", "/train_stop", run=s.run)
            states[s.i] = s.watch(deadline - 150)

        states = {}
        t_train = time.monotonic()
        together(students, label_then_watch)
        finished = [s for s in started if states.get(s.i) == "finished"]
        log.times["training"] = [time.monotonic() - t_train]
        print(f"{len(finished)} of {len(started)} trainings finished in {time.monotonic() - t_train:.0f} s")

        pinned = started[0].run if started else None
        if pinned:
            teacher.call("teacher", "/teacher_pin", run=pinned, pinned=True)
        dpo = teacher.call(
            "teacher",
            "/train_start",
            algo="dpo",
            preset="quick-cpu",
            settings=json.dumps({"preferences": "feedback", "steps": 2, "eval_at_start": False, "eval_every": 0}),
        )
        if dpo is not None:
            teacher.run = as_json(dpo)["run"]
            dpo_state = teacher.watch(deadline - 30)
        else:
            dpo_state = "not started"
        print(f"the teacher pinned {pinned}; DPO on the class's labels: {dpo_state}")

        store = runs / "feedback" / "labels.jsonl"
        labels_sent = sum(s.labels_sent for s in students)
        labels_on_disk = count_labels(store)
        for s in students:
            s.close()
        teacher.close()
        time.sleep(10)
        rss_end = proc_kb(pid, "VmRSS") / 1e6
        rss_peak = proc_kb(pid, "VmHWM") / 1e6

        abuse = {}
        if not args.no_abuse:
            print("abuse round:")
            victim, joined = Student(url, 100, Log()), Student(url, 101, Log())
            for p in (victim, joined):
                p.load_page()
                p.join()
            abuse["event_queue"] = abuse_event_queue(url, victim)
            abuse["training_queue"] = abuse_training_queue(url, joined)
            abuse["fake_labels"] = abuse_labels(url, joined, store)
            abuse["teacher_key"] = abuse_teacher_key(url)
            victim.close()
            joined.close()

        actions = {
            a: {"n": len(log.times[a]), "p50": round(pct(log.times[a], 0.5), 3), "p95": round(pct(log.times[a], 0.95), 3)}
            for a in (*LESSON_ACTIONS, "generate_at_caps", "training")
            if log.times.get(a)
        }
        errors = sum(len(v) for v in log.errors.values())
        result = {
            "students": args.students,
            "errors": errors,
            "actions": actions,
            "trainings_started": len(started) + (1 if teacher.run else 0),
            "trainings_finished": len(finished) + (1 if dpo_state == "finished" else 0),
            "labels_sent": labels_sent,
            "labels_on_disk": labels_on_disk,
            "rss_start_gb": round(rss_start, 3),
            "rss_peak_gb": round(rss_peak, 3),
            "rss_end_gb": round(rss_end, 3),
            "abuse": abuse,
            "machine": describe(),
            "wall_s": round(time.monotonic() - t_lesson, 1),
        }
        print(f"\n{'action':>18} {'n':>4} {'p50 s':>7} {'p95 s':>7} {'errors':>6}")
        for a, v in actions.items():
            print(f"{a:>18} {v['n']:>4} {v['p50']:>7.2f} {v['p95']:>7.2f} {len(log.errors.get(a, [])):>6}")
        for a, errs in log.errors.items():
            for e in sorted(set(errs))[:3]:
                print(f"  error in {a}: {e}")
        print(
            f"\nerrors {errors} · trainings {result['trainings_finished']} of {result['trainings_started']} finished · "
            f"labels {labels_sent} sent, {labels_on_disk} on disk · RSS start {rss_start:.2f} GB, peak "
            f"{rss_peak:.2f} GB, end {rss_end:.2f} GB · abuse refused: "
            + (", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in abuse.items()) or "skipped")
            + f" · {result['wall_s']:.0f} s"
        )
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1))
        if args.events:
            Path(args.events).write_text("".join(json.dumps(e) + "\n" for e in sorted(log.events, key=lambda e: e[1])))
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    sys.stdout.flush()
    os._exit(0)  # client threads of a timed-out call must not keep the process alive


if __name__ == "__main__":
    raise SystemExit(main())
