"""The named training API (``/train_start``, ``/train_status``, ``/train_stop``) through ``gradio_client`` on
the whole app served in-process, on the tiny model (local use takes any model folder): a run from start
to its end, stopping a running and a waiting run, unknown runs, bad knobs and bad JSON; in shared mode,
a run on the session's own ``rm:`` reward model goes through the queue (its limits are checked once,
with the session's runs: the trainer does not check them again without them), and another session
neither sees nor uses it. An ended job keeps its records, never its trainer.

Marked ``integration`` + ``slow``: six one-step PPO runs on the real default model leave the server's RSS
within 300 MB of what it was after the second."""

from __future__ import annotations

import gc
import json
import shutil
import time
from pathlib import Path

import pytest

from rlhf_demo.classroom import limits
from rlhf_demo.training.queue import QUEUE
from rlhf_demo.ui.context import NOT_YOURS

ENDED = ("finished", "stopped", "interrupted", "diverged", "failed")
EXAMPLE_REWARD = Path(__file__).resolve().parents[1] / "rlhf_demo" / "assets" / "example-reward"


@pytest.fixture(scope="module")
def app(tmp_path_factory, close_demo):
    from rlhf_demo.ui.app import build_demo
    from rlhf_demo.ui.context import AppContext

    ctx = AppContext(runs_dir=tmp_path_factory.mktemp("api") / "runs")
    demo = build_demo(ctx)
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url.rstrip("/"), ctx
    finally:
        close_demo(demo)


def client(app):
    from gradio_client import Client

    return Client(app[0], verbose=False)


def tiny(model_dir, **kw) -> str:
    """Settings for a short PPO run on the tiny model, without the held-out evaluation."""
    return json.dumps(
        {
            "model": str(model_dir),
            "batch_size": 4,
            "num_mini_batches": 2,
            "response_tokens": 4,
            "eval_final": False,
            "kl_budget": 0.0,
            "steps": 2,
            **kw,
        }
    )


def start(c, settings: str, algo: str = "ppo", preset: str = "") -> dict:
    return json.loads(c.predict(algo=algo, preset=preset, settings=settings, api_name="/train_start"))


def status(c, run: str) -> dict:
    return json.loads(c.predict(run=run, api_name="/train_status"))


def wait(c, run: str, until=lambda s: s["state"] in ENDED, timeout: float = 120.0) -> dict:
    t0 = time.monotonic()
    while True:
        s = status(c, run)
        if until(s):
            return s
        assert time.monotonic() - t0 < timeout, f"timed out: {s}"
        time.sleep(0.2)


def refused(fn, *args, **kw) -> str:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        fn(*args, **kw)
    return str(err.value)


def test_a_run_from_start_to_its_end(app, tiny_model_dir):
    c = client(app)
    got = start(c, tiny(tiny_model_dir))
    assert set(got) >= {"run", "state", "position"} and got["state"] in ("waiting", "running")
    assert "/" not in got["run"] and got["run"].startswith("ppo-")
    end = wait(c, got["run"])
    assert end["state"] == "finished" and end["step"] == 2 and end["total_steps"] == 2, end
    assert "finished" in end["lines"] and str(app[1].runs_dir) not in end["lines"]  # no server path
    assert "reward_mean" in end["metrics"]
    folder = Path(app[1].runs_dir) / got["run"]
    assert json.loads((folder / "summary.json").read_text())["status"] == "finished"
    job = QUEUE.find_run(got["run"])
    assert job.trainer is None and job.build is None and job.cfg.steps == 2  # the model was let go, the config kept
    again = json.loads(c.predict(run=got["run"], api_name="/train_stop"))
    assert again == {"run": got["run"], "state": "finished", "said": "nothing to stop: the run is not waiting or running"}


def test_stop_a_running_and_a_waiting_run(app, tiny_model_dir):
    a, b = client(app), client(app)  # two sessions: two owners, one training slot
    first = start(a, tiny(tiny_model_dir, steps=200))
    wait(a, first["run"], until=lambda s: s["state"] == "running" and s["step"] >= 1)
    second = start(b, tiny(tiny_model_dir))
    assert second["state"] == "waiting" and second["position"] == 1
    s = status(b, second["run"])
    assert s["state"] == "waiting" and s["position"] == 1 and "position 1" in s["lines"]
    left = json.loads(b.predict(run=second["run"], api_name="/train_stop"))
    assert left == {"run": second["run"], "state": "stopped", "said": "left the queue"}
    stopping = json.loads(a.predict(run=first["run"], api_name="/train_stop"))
    assert stopping["said"] == "stopping after the current step"
    end = wait(a, first["run"])
    assert end["state"] == "stopped" and 1 <= end["step"] < 200


@pytest.mark.parametrize(
    "algo, settings",
    [
        ("dpo", {"batch_size": 4, "max_length": 24}),
        ("reward", {"batch_size": 4, "max_length": 24}),
        ("grpo", {"batch_size": 4, "num_generations": 2, "response_tokens": 4}),
    ],
)
def test_every_algorithm_starts_by_its_cli_name(app, tiny_model_dir, algo, settings):
    """The same trainers as the page's and the CLI's (``algorithms.make_trainer``), from the shipped pairs
    or the built-in prompts."""
    c = client(app)
    got = start(c, json.dumps({"model": str(tiny_model_dir), "steps": 1, "eval_at_start": False, "eval_every": 0, **settings}), algo=algo)
    assert got["run"].startswith(f"{algo}-")
    end = wait(c, got["run"])
    assert end["state"] == "finished" and end["step"] == 1 and end["algo"] == algo, end


def test_unknown_runs_bad_knobs_and_bad_json(app, tiny_model_dir):
    c = client(app)
    for run in ("no-such-run", "../runs", "", "x" * 500):
        assert NOT_YOURS in refused(c.predict, run=run, api_name="/train_status")
        assert NOT_YOURS in refused(c.predict, run=run, api_name="/train_stop")
    msg = refused(start, c, tiny(tiny_model_dir, learning_rate=0.1))
    assert "unknown PPO setting 'learning_rate'" in msg and "--help" in msg
    assert "not valid JSON" in refused(start, c, '{"steps": 1,')
    assert "not valid JSON" in refused(start, c, '{"prompts": "\\ud800"}')
    assert "must be a JSON object" in refused(start, c, "[1, 2]")
    assert "nested value" in refused(start, c, '{"steps": {"a": 1}}')
    assert "steps must be a whole number" in refused(start, c, '{"steps": "many"}')
    assert "algo must be one of ppo, dpo, reward, grpo" in refused(start, c, "{}", algo="sft")
    assert "unknown PPO preset 'fast'" in refused(start, c, "{}", preset="fast")
    assert "unknown DPO setting 'kl_budget'" in refused(start, c, '{"kl_budget": 1}', algo="dpo")  # that algorithm's knobs
    assert "uploads go through the Training tab" in refused(start, c, tiny(tiny_model_dir, prompts="upload:x.txt"))


@pytest.mark.parametrize("short", [False, True], ids=["rm:FOLDER", "rm:run:NAME"])
def test_shared_mode_trains_on_the_sessions_own_reward_model(app, tiny_model_dir, monkeypatch, short):
    """The page and the API check the limits with the session's runs; the trainer, which validates its
    config again in the queue, must not check them again from the environment (which knows no session's
    runs): before, this run failed in the queue with "reward: this shared server builds ..."."""
    from rlhf_demo.classroom.identity import session_user_id

    monkeypatch.setenv(limits.SHARED_ENV, "1")
    monkeypatch.setenv(limits.MODELS_ENV, str(tiny_model_dir))
    for k in (limits.MAX_TRAIN_S_ENV, limits.FULL_FINETUNE_ENV, "RLHF_DEMO_TEACHER_KEY"):
        monkeypatch.delenv(k, raising=False)
    ctx = app[1]
    monkeypatch.setenv("RLHF_DEMO_RUNS", str(ctx.runs_dir))  # where run:NAME is looked up
    me, other = client(app), client(app)
    rm = Path(ctx.runs_dir) / f"reward-20260101-000000-mine0{int(short)}"
    shutil.copytree(EXAMPLE_REWARD, rm)
    ctx.record.set_owner(rm, session_user_id(me.session_hash), "me")
    spec = f"rm:run:{rm.name}" if short else f"rm:{rm}"
    settings = tiny(tiny_model_dir, steps=1, reward=spec, gold_reward="none", max_seconds=60)
    assert "reward: this shared server" in refused(start, other, settings)  # not the other session's
    got = start(me, settings)
    end = wait(me, got["run"])
    assert end["state"] == "finished" and end["step"] == 1, end
    for run in (got["run"], rm.name):  # nor are its runs
        assert NOT_YOURS in refused(other.predict, run=run, api_name="/train_status")
        assert NOT_YOURS in refused(other.predict, run=run, api_name="/train_stop")
    assert status(me, rm.name)["state"] == "finished"  # read from the folder


def test_classroom_mode_asks_the_pages_gate_first(app, monkeypatch):
    """The checks of the page's Start (``AppContext.gate``): a client that did not join the class is refused
    before anything is loaded (here: the class's labels for DPO)."""
    from rlhf_demo.classroom.permissions import NOT_JOINED

    monkeypatch.setenv("RLHF_DEMO_TEACHER_KEY", "a-teacher-key-for-the-test")
    msg = refused(start, client(app), '{"preferences": "feedback", "steps": 1}', algo="dpo")
    assert NOT_JOINED in msg


def _rss_mb() -> float:
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.integration
@pytest.mark.slow
def test_six_trainings_in_a_row_leave_memory_flat(app, capsys):
    """Each ended job used to keep its trainer (policy, reference, optimiser: ~520 MB of the default model)
    as its owner's latest: six students (six sessions) training once each grew the server by ~2.6 GB.
    The issue's check: six sessions, RSS after the sixth within 300 MB of after the second (batch 4: the
    memory of a trainer does not depend on it, nor on the response length or the epochs: short runs)."""
    rss, seconds = [], []
    for _ in range(6):
        c = client(app)  # a new session each time: six owners, as in a class
        t0 = time.monotonic()
        got = start(c, json.dumps({"steps": 1, "batch_size": 4, "eval_final": False, "response_tokens": [4, 4], "ppo_epochs": 1}))
        end = wait(c, got["run"], timeout=300)
        assert end["state"] == "finished", end
        job = QUEUE.find_run(got["run"])
        while QUEUE.running() is not None or job.ended is None:
            time.sleep(0.1)
        time.sleep(0.5)  # the worker collects after it marks the job ended
        seconds.append(time.monotonic() - t0)
        rss.append(_rss_mb())
    with capsys.disabled():
        print(f"\nRSS after each run (MB): {[round(r) for r in rss]}; seconds per run: {[round(s, 1) for s in seconds]}")
    assert rss[5] - rss[1] < 300, rss
