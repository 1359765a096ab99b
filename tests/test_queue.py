"""The app's training queue: one training at a time, one job per session, waiting holds nothing, a
waiting job can leave and a running one stop, a failing job does not stop the line."""
from __future__ import annotations

import json
import time

import pytest

from rlhf_demo.ppo.config import preset
from rlhf_demo.ppo.trainer import PPOTrainer
from rlhf_demo.runs.queue import QueueError, TrainingQueue


def _wait(cond, timeout=120.0):
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.05)


PROMPTS = ["The movie was", "I watched this film"]


def config(model_dir, steps=2, **kw):
    return preset("quick-cpu", model=str(model_dir), batch_size=4, num_mini_batches=2, ppo_epochs=1, steps=steps,
                  response_tokens=(4, 4), eval_final=False, device="cpu", kl_budget=0.0, **kw).validate()


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
    assert not any(seen_both_running)                       # never two trainings at once
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
    assert not (tmp_path / "b").exists()                    # the job that left never started
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

    from rlhf_demo.cli.main import main
    from rlhf_demo.runs.quota import cached_zip, enforce, folder_bytes

    root = tmp_path / "runs"
    for name in ("old", "pinned", "new"):
        assert main(["train", "--algo", "ppo", "--model", str(tiny_model_dir), "--steps", "1", "--batch-size", "4",
                     "--num-mini-batches", "2", "--response-tokens", "4", "--no-eval-final", "--quiet",
                     "--out", str(root / name)]) == 0
        time.sleep(0.05)
    for i, name in enumerate(("pinned", "old", "new")):   # mtimes: pinned oldest, then old, then new
        os.utime(root / name, (1000 + i, 1000 + i))
    one = folder_bytes(root / "new")
    downloads = tmp_path / "dl"
    z1 = cached_zip(root / "new", downloads)
    assert cached_zip(root / "new", downloads) == z1          # built once, reused
    os.utime(z1, (0, 0))
    removed = enforce(root, max_bytes=2.5 * one, pinned={"pinned"}, tmp_dirs=(downloads,), max_age_s=60)
    assert "old" in removed and "pinned" not in removed and "new" not in removed and str(z1) in removed
    assert (root / "pinned").exists() and (root / "new").exists() and not (root / "old").exists()
