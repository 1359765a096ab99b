"""The app's training queue: one training at a time, one job per session, waiting holds nothing, a
waiting job can leave and a running one stop, a failing job does not stop the line."""

from __future__ import annotations

import json
import time

import pytest

from rlhf_demo.ppo.config import preset
from rlhf_demo.ppo.trainer import PPOTrainer
from rlhf_demo.training.queue import QueueError, TrainingQueue


def _wait(cond, timeout=120.0):
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.05)


PROMPTS = ["The movie was", "I watched this film"]


def config(model_dir, steps=2, **kw):
    return preset(
        "quick-cpu",
        model=str(model_dir),
        batch_size=4,
        num_mini_batches=2,
        ppo_epochs=1,
        steps=steps,
        response_tokens=(4, 4),
        eval_final=False,
        device="cpu",
        kl_budget=0.0,
        **kw,
    ).validate()


def builder(model_dir, steps=2, **kw):
    cfg = config(model_dir, steps, **kw)
    return lambda stop: PPOTrainer(cfg, prompts=PROMPTS, stop=stop)


def test_jobs_run_one_at_a_time_in_order(tiny_model_dir, tmp_path):
    q = TrainingQueue()
    a = q.submit("alice", "ppo", tmp_path / "a", builder(tiny_model_dir, steps=3))
    b = q.submit("bob", "ppo", tmp_path / "b", builder(tiny_model_dir))
    assert q.position(b) in (1, 2) and q.eta_s(b) > 0 and "position" in q.waiting_line(b)
    with pytest.raises(QueueError, match="already have a training"):
        q.submit("alice", "ppo", tmp_path / "a2", builder(tiny_model_dir))
    seen_both_running = []

    def both_done():
        seen_both_running.append(a.state == "running" and b.state == "running")
        return a.done and b.done

    _wait(both_done)
    assert not any(seen_both_running)  # never two trainings at once
    assert a.state == b.state == "finished" and a.ended <= b.started
    assert [r["step"] for r in a.records] == [1, 2, 3] and a.samples and a.version > 3
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["status"] == "finished"
    assert q.latest("alice") is a and q.position(a) == -1
    assert "finished" in a.lines[0]


def test_a_reader_that_sees_a_job_done_sees_the_version_that_ended_it(tiny_model_dir, tmp_path):
    """The UI's timer stops once it reads ``done``; a ``done`` read with an older version would leave the
    page without the final status line (CI once waited 180 s for "finished"). The run's own end is
    observed from inside: ``final_lines`` reads ``trainer.message`` while the job is being ended."""
    seen: list[tuple[int, bool]] = []
    jobs: list = []

    class Observed(PPOTrainer):
        @property
        def message(self):
            if jobs:
                seen.append(jobs[0].snapshot())
            return self._message

        @message.setter
        def message(self, text):
            self._message = text

    cfg = config(tiny_model_dir)
    q = TrainingQueue()
    jobs.append(q.submit("alice", "ppo", tmp_path / "a", lambda stop: Observed(cfg, prompts=PROMPTS, stop=stop)))
    job = jobs[0]
    _wait(lambda: job.done)
    final = job.snapshot()
    assert final[1] and "finished" in job.lines[0] and job.state == "finished"
    assert seen, "the end of the run was not observed"
    assert all(version == final[0] for version, done in seen if done), (seen, final)


def test_leave_the_queue_and_stop_a_running_job(tiny_model_dir, tmp_path):
    q = TrainingQueue()
    a = q.submit("alice", "ppo", tmp_path / "a", builder(tiny_model_dir, steps=500))
    b = q.submit("bob", "ppo", tmp_path / "b", builder(tiny_model_dir))
    assert q.cancel("bob") == "left the queue" and b.state == "cancelled" and q.position(b) == -1
    _wait(lambda: len(a.records) >= 2)
    assert q.cancel("alice") == "stopping after the current step"
    _wait(lambda: a.done)
    assert a.state == "stopped" and len(a.records) < 500
    assert (tmp_path / "a" / "policy" / "adapter_config.json").exists()
    assert not (tmp_path / "b").exists()  # the job that left never started
    assert "nothing to stop" in q.cancel("carol")


def test_a_failing_job_does_not_stop_the_line(tiny_model_dir, tmp_path):
    q = TrainingQueue()

    def broken(stop):
        raise ValueError("could not load 'nope': no such model")

    a = q.submit("alice", "ppo", tmp_path / "a", broken)
    b = q.submit("bob", "ppo", tmp_path / "b", builder(tiny_model_dir))
    _wait(lambda: a.done and b.done)
    assert a.state == "failed" and "no such model" in a.error and b.state == "finished"


def test_a_full_queue_refuses_with_a_clear_message(tiny_model_dir, tmp_path):
    q = TrainingQueue(max_waiting=1)
    q.submit("alice", "ppo", tmp_path / "a", builder(tiny_model_dir, steps=500))
    _wait(lambda: q.running() is not None)
    q.submit("bob", "ppo", tmp_path / "b", builder(tiny_model_dir))
    with pytest.raises(QueueError, match="queue is full"):
        q.submit("carol", "ppo", tmp_path / "c", builder(tiny_model_dir))
    q.cancel("bob")
    q.cancel("alice")
    _wait(lambda: q.running() is None)


def test_quota_removes_the_oldest_ended_runs_and_old_temporary_files(tiny_model_dir, tmp_path):
    import os

    from rlhf_demo.classroom.quota import cached_zip, enforce, folder_bytes
    from rlhf_demo.cli.main import main

    root = tmp_path / "runs"
    for name in ("old", "pinned", "new"):
        assert (
            main(
                [
                    "train",
                    "--algo",
                    "ppo",
                    "--model",
                    str(tiny_model_dir),
                    "--steps",
                    "1",
                    "--batch-size",
                    "4",
                    "--num-mini-batches",
                    "2",
                    "--response-tokens",
                    "4",
                    "--no-eval-final",
                    "--quiet",
                    "--out",
                    str(root / name),
                ]
            )
            == 0
        )
        time.sleep(0.05)
    for i, name in enumerate(("pinned", "old", "new")):  # mtimes: pinned oldest, then old, then new
        os.utime(root / name, (1000 + i, 1000 + i))
    one = folder_bytes(root / "new")
    downloads = tmp_path / "dl"
    z1 = cached_zip(root / "new", downloads)
    assert cached_zip(root / "new", downloads) == z1  # built once, reused
    os.utime(z1, (0, 0))
    removed = enforce(root, max_bytes=2.5 * one, pinned={"pinned"}, tmp_dirs=(downloads,), max_age_s=60)
    assert "old" in removed and "pinned" not in removed and "new" not in removed and str(z1) in removed
    assert (root / "pinned").exists() and (root / "new").exists() and not (root / "old").exists()


def test_an_ended_job_keeps_its_records_and_lets_go_of_its_model(tiny_model_dir, tmp_path):
    """Finished or failed after loading: the job keeps its config, records and lines; nothing keeps its
    trainer's model alive (not the job, not the build closure, not the exception's traceback)."""
    import weakref

    models = []
    cfg = config(tiny_model_dir)

    def build(stop):
        trainer = PPOTrainer(cfg, prompts=PROMPTS, stop=stop)
        models.append(weakref.ref(trainer.policy.model))
        return trainer

    def fails_after_loading(stop):
        trainer = build(stop)
        raise ValueError(f"could not use {type(trainer).__name__}")

    q = TrainingQueue()
    a = q.submit("alice", "ppo", tmp_path / "a", build, cfg=cfg)
    b = q.submit("bob", "ppo", tmp_path / "b", fails_after_loading)
    _wait(lambda: a.ended is not None and b.ended is not None)
    assert a.state == "finished" and b.state == "failed" and "could not use PPOTrainer" in b.error
    assert a.records and a.cfg is cfg and a.total_steps == 2 and b.cfg is None
    assert a.trainer is a.build is b.trainer is b.build is None
    assert q.find_run("a") is a and q.find_run("b") is b and q.find_run("c") is None
    _wait(lambda: len(models) == 2 and all(m() is None for m in models), timeout=10)  # collected by the worker


def test_ended_jobs_are_remembered_up_to_a_cap(tmp_path, monkeypatch):
    from rlhf_demo.training import queue

    monkeypatch.setattr(queue, "MAX_ENDED", 3)
    q = TrainingQueue()

    def broken(stop):
        raise ValueError("no model")

    jobs = []
    for i in range(5):
        jobs.append(q.submit(f"u{i}", "ppo", tmp_path / f"r{i}", broken))
        _wait(lambda: jobs[-1].ended is not None)
    assert [q.latest(f"u{i}") for i in range(5)] == [None, None, *jobs[2:]]  # the oldest forgotten first
    again = q.submit("u2", "ppo", tmp_path / "r5", broken)  # u2 is now the newest
    _wait(lambda: again.ended is not None)
    q.submit("u9", "ppo", tmp_path / "r9", broken)
    _wait(lambda: q.latest("u9").ended is not None)
    assert q.latest("u3") is None and q.latest("u2") is again and q.latest("u4") is jobs[4]
