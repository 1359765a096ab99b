"""The app's own training queue: one training at a time on the machine, in a worker thread of its own.

A session submits a job (a function that builds the trainer, and the run folder to write) and gets
its place in line back at once: waiting holds no slot of the web server's event queue, so the
interactive tabs are never refused because trainings wait. Each session has at most one job waiting
or running; it can leave the line, or stop its running job (after the current step). Whoever watches
a job reads its state (records, status lines, the latest batch): one producer, any number of readers,
no model compute per reader. A job keeps running when the page that started it is closed.

Owners are user ids (``classroom.identity``): a reload keeps a student's job theirs. The teacher acts
on any job by its id (``move``, ``remove``); anyone may read ``current()`` (the job training now, or the
last one that trained) to watch it; ``find_run(name)`` finds a job by its run folder's name.

Memory: a job holds its trainer (policy, reference, optimiser: ~520 MB for the default model) only
while it trains. When it ends, however it ends, the job keeps its config, records, lines, samples and
before/after, and lets go of the trainer and of the function that built it; the worker then collects
the cycles torch modules leave and hands the freed heap back to the OS. Ended jobs are remembered per
owner (``latest``) up to ``MAX_ENDED``, the oldest forgotten first.
"""

from __future__ import annotations

import ctypes
import gc
import inspect
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rlhf_demo.runs.folder import write_run
from rlhf_demo.training.status import final_lines, progress_lines

WAITING, LOADING, RUNNING = "waiting", "loading", "running"
OVERHEAD_S = 40.0
"""Seconds a job costs beyond its training-time budget (loading the model, the final evaluation):
added to ETAs."""
MAX_WAITING = 30
MAX_ENDED = 500
"""Ended jobs remembered (their owners' latest: records and lines, a few hundred kB each); older ones are
forgotten (their run folders stay)."""


class QueueError(ValueError):
    """A request the queue refuses (one job per session, a full queue); the message says why."""


@dataclass
class Job:
    owner: str
    algo: str
    out: Path
    preset: str | None
    build: Callable | None  # build(stop: Callable[[], bool]) -> a trainer (loads the model: runs in the worker);
    # None once the job ended (a closure may hold what the trainer needs)
    budget_s: float  # the training-time budget (0 = none: ETAs then use a default)
    total_steps: int = 0
    nickname: str = ""  # the owner's nickname, shown to the class ("whose run is training")
    cfg: object = None  # the validated config (what readers need: kl_budget, steps, ...); kept after the end
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    state: str = WAITING
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    records: list = field(default_factory=list)  # metrics records without their sample rows
    samples: list = field(default_factory=list)  # the latest batch / held-out samples
    before_after: list = field(default_factory=list)
    lines: list = field(default_factory=lambda: ["Waiting for the training slot…"])
    version: int = 0  # bumped at every change: readers redraw only then
    error: str = ""
    trainer: object = None  # only while it trains (None once it ended: the model is let go)
    stop_event: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def done(self) -> bool:
        return self.state not in (WAITING, LOADING, RUNNING)

    def expected_s(self) -> float:
        return (self.budget_s or 180.0) + OVERHEAD_S

    def remaining_s(self) -> float:
        if self.state == WAITING:
            return self.expected_s()
        trained = self.records[-1].get("time_s", 0.0) if self.records else 0.0
        return max(0.0, (self.budget_s or 180.0) - trained) + OVERHEAD_S / 2

    def snapshot(self) -> tuple[int, bool]:
        """(version, done) read together: a reader that stops watching on ``done`` has then drawn the
        version that ended the job, never one from before (the state and its lines change in one step)."""
        with self._lock:
            return self.version, self.done

    def say(self, fraction: float, message: str) -> None:
        """A trainer's progress before and between its records (loading, TRL's set-up with an ETA, the
        held-out evaluation of a stopped run): the job's status line until the next record."""
        if message:
            self._touch([message[0].upper() + message[1:]])

    def _touch(self, lines: list[str] | None = None, state: str | None = None) -> None:
        with self._lock:
            if lines is not None:
                self.lines = lines
            if state is not None:
                self.state = state
            self.version += 1


class TrainingQueue:
    def __init__(self, max_waiting: int = MAX_WAITING):
        self.max_waiting = max_waiting
        self._lock = threading.Condition()
        self._jobs: list[Job] = []  # waiting and running, in order
        self._latest: OrderedDict[str, Job] = OrderedDict()  # owner → their latest job (ended ones too), oldest first
        self._worker: threading.Thread | None = None
        self._last: Job | None = None  # the job that started last (kept once it ended: viewers see its end)

    # ------------------------------------------------------------------ what sessions ask
    def submit(
        self,
        owner: str,
        algo: str,
        out: Path,
        build: Callable,
        *,
        preset: str | None = None,
        budget_s: float = 0.0,
        total_steps: int = 0,
        nickname: str = "",
        cfg=None,
    ) -> Job:
        with self._lock:
            mine = [j for j in self._jobs if j.owner == owner]
            if mine:
                raise QueueError(
                    "you already have a training "
                    + ("running" if mine[0].state != WAITING else "waiting")
                    + ": stop it or leave the queue first"
                )
            if sum(j.state == WAITING for j in self._jobs) >= self.max_waiting:
                raise QueueError(f"the training queue is full ({self.max_waiting} waiting): try again in a few minutes")
            job = Job(owner, algo, Path(out), preset, build, budget_s, total_steps, nickname=nickname or owner[:6], cfg=cfg)
            self._jobs.append(job)
            self._latest.pop(owner, None)
            self._latest[owner] = job
            self._forget_old()
            self._touch_positions()
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run_forever, name="training-queue", daemon=True)
                self._worker.start()
            self._lock.notify_all()
            return job

    def latest(self, owner: str) -> Job | None:
        with self._lock:
            return self._latest.get(owner)

    def find_run(self, name) -> Job | None:
        """The job writing the run folder called ``name``: one in line, else an owner's latest or the last
        that trained (None when the queue no longer remembers it: read the folder, ``runs.state``)."""
        if not isinstance(name, str) or not name:
            return None
        with self._lock:
            for job in (*self._jobs, *reversed(self._latest.values()), *([self._last] if self._last else [])):
                if job.out.name == name:
                    return job
        return None

    def _forget_old(self) -> None:
        """At most ``MAX_ENDED`` ended jobs stay in ``_latest`` (the oldest go first)."""
        ended = [owner for owner, job in self._latest.items() if job.done]
        for owner in ended[: max(0, len(ended) - MAX_ENDED)]:
            del self._latest[owner]

    def running(self) -> Job | None:
        with self._lock:
            return next((j for j in self._jobs if j.state in (LOADING, RUNNING)), None)

    def current(self) -> Job | None:
        """The job training now, else the one that trained last (None before the first)."""
        return self.running() or self._last

    def jobs(self) -> list[Job]:
        """Running and waiting jobs, in order."""
        with self._lock:
            return list(self._jobs)

    def find(self, job_id) -> Job | None:
        with self._lock:
            return next((j for j in self._jobs if j.id == job_id), None) if isinstance(job_id, str) else None

    def move(self, job_id: str, delta: int) -> str:
        """Move a waiting job ``delta`` places (negative = earlier) among the waiting ones (the teacher)."""
        with self._lock:
            job = next((j for j in self._jobs if j.id == job_id), None) if isinstance(job_id, str) else None
            if job is None or job.state != WAITING:
                raise QueueError("that job is not waiting in the queue (it started, ended or left)")
            waiting = [j for j in self._jobs if j.state == WAITING]
            k = max(0, min(len(waiting) - 1, waiting.index(job) + int(delta)))
            waiting.remove(job)
            waiting.insert(k, job)
            self._jobs = [j for j in self._jobs if j.state != WAITING] + waiting
            self._touch_positions()
            return f"moved to position {k + 1}"

    def remove(self, job_id: str, why: str = "The teacher removed this run from the queue.") -> str:
        """Take a waiting job out of the queue, or stop the running one after its current step (the teacher,
        or the owner through the named API: ``why`` is the job's line when it leaves the queue)."""
        with self._lock:
            job = next((j for j in self._jobs if j.id == job_id), None) if isinstance(job_id, str) else None
            if job is None:
                raise QueueError("that job is not in the queue any more")
            return self._cancel(job, why)

    def waiting(self) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs if j.state == WAITING]

    def position(self, job: Job) -> int:
        """0 = training now; k = k-th in line; -1 = not in the queue (ended or left)."""
        with self._lock:
            if job not in self._jobs:
                return -1
            return 0 if job.state != WAITING else [j for j in self._jobs if j.state == WAITING].index(job) + 1

    def eta_s(self, job: Job) -> float:
        """Seconds until ``job`` starts (0 once it runs)."""
        with self._lock:
            if job.state != WAITING or job not in self._jobs:
                return 0.0
            ahead = self._jobs[: self._jobs.index(job)]
            return sum(j.remaining_s() for j in ahead)

    def cancel(self, owner: str) -> str:
        """Leave the queue (a waiting job) or stop the running one after its current step."""
        with self._lock:
            job = next((j for j in self._jobs if j.owner == owner), None)
            if job is None:
                return "nothing to stop: you have no training waiting or running"
            return self._cancel(job, "You left the queue.")

    def _cancel(self, job: Job, why: str) -> str:
        if job.state == WAITING:
            self._jobs.remove(job)
            job.ended = time.time()
            job.build = None
            job._touch([why], state="cancelled")
            self._forget_old()
            self._touch_positions()
            return "left the queue"
        if job.stop_event.is_set():  # a second Stop: no held-out evaluation of the stopped policy
            if job.trainer is not None:
                job.trainer.skip_eval = True
            return "stopping after the current step, without the held-out evaluation"
        job.stop_event.set()
        return "stopping after the current step"  # then the held-out evaluation (a second Stop skips it)

    def waiting_line(self, job: Job) -> str:
        k = self.position(job)
        if k <= 0:
            return ""
        return f"Waiting: position {k} in the training queue, starts in ≈ {self.eta_s(job) / 60:.1f} min."

    # ------------------------------------------------------------------ the worker
    def _touch_positions(self) -> None:
        for j in self._jobs:
            if j.state == WAITING:
                j._touch()

    def _run_forever(self) -> None:
        while True:
            with self._lock:
                while not any(j.state == WAITING for j in self._jobs):
                    self._lock.wait(timeout=60)
                job = next(j for j in self._jobs if j.state == WAITING)
                job.started = time.time()
                self._last = job
                job._touch(["Loading a training copy of the model…"], state=LOADING)
                self._touch_positions()
            try:
                self._run(job)
                from rlhf_demo.classroom.limits import current

                if current().shared:
                    from rlhf_demo.classroom.ownership import ClassRecord
                    from rlhf_demo.classroom.quota import after_run

                    after_run(job.out.parent, pinned=set(ClassRecord(job.out.parent).pins()))  # pins are kept
            finally:
                job.trainer = job.build = None  # the ended job keeps its records, never its model
                with self._lock:
                    if job in self._jobs:
                        self._jobs.remove(job)
                    job.ended = time.time()
                    self._touch_positions()
                    self._forget_old()
                    self._lock.notify_all()
                release_memory()

    def _run(self, job: Job) -> None:
        try:
            trainer = build_trainer(job)
            job.trainer, job.cfg = trainer, trainer.cfg
            job.total_steps = trainer.planned_steps() if hasattr(trainer, "planned_steps") else trainer.cfg.steps
            job._touch(["Training…"], state=RUNNING)
            for rec in write_run(trainer, job.out, preset=job.preset):
                rows = rec.get("samples") or rec.get("eval/samples")
                if rows:
                    job.samples = rows
                job.records.append({k: v for k, v in rec.items() if k not in ("samples", "eval/samples")})
                job._touch(progress_lines(trainer.cfg, rec, job.total_steps))
            job.before_after = trainer.before_after
            job._touch(final_lines(trainer, job.out.name), state=trainer.status)  # the run's name, never a server path
        except Exception as exc:  # noqa: BLE001 - shown to the job's owner; the queue goes on
            job.error = str(exc)  # the text only: the exception's traceback holds the trainer's frames
            job._touch([f"failed: {exc}"], state="failed")


def build_trainer(job: Job):
    """``job.build(stop)``, or ``job.build(stop, progress)`` when it takes the progress callback too (the
    job's ``say``: loading and set-up lines with their ETA)."""
    takes = len(inspect.signature(job.build).parameters)
    return job.build(job.stop_event.is_set, job.say) if takes >= 2 else job.build(job.stop_event.is_set)


def release_memory() -> None:
    """Collect what an ended job left (torch modules and tracebacks hold reference cycles), then hand the
    freed heap back to the OS (glibc keeps freed small blocks otherwise, and the server's RSS stays up)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the memory is reused by the process, only RSS stays higher
        pass


QUEUE = TrainingQueue()
"""The process-wide queue (the UI's); the CLI trains in its own process and needs none."""
