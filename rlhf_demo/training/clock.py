"""The training clock every trainer keeps: training time with evaluation excluded, the time budget,
and the evaluation marks (``eval_at_seconds``).

A step's time is known only after it ran, so with ``slack`` > 0 the clock looks ahead: it says
"out of time" (and "evaluate now" for a mark) when the *next* step, at the recent pace × slack, would
cross the budget (or the mark). Evaluations then stay within the budget. With ``slack`` = 0 it says
so once the time has passed (for trainers whose steps are too short to matter).
"""

from __future__ import annotations

import time


class TrainingClock:
    def __init__(self, max_seconds: float = 0.0, marks: tuple = (), slack: float = 1.0):
        self.max_seconds = float(max_seconds or 0.0)
        self.marks = sorted(float(m) for m in marks)
        self.slack = float(slack)
        self.time_s = 0.0  # training time so far (what the budget and the marks count)
        self.per_step: float | None = None
        self._wall0 = time.perf_counter()

    @property
    def wall_s(self) -> float:
        return time.perf_counter() - self._wall0

    def step_done(self, seconds: float) -> None:
        """A training step took ``seconds``: count it and follow the pace (exponential average)."""
        self.time_s += seconds
        self.per_step = seconds if self.per_step is None else 0.7 * self.per_step + 0.3 * seconds

    def add(self, seconds: float) -> None:
        """Training time that is not a step (e.g. PPO's budget check before an evaluation)."""
        self.time_s += seconds

    def _ahead(self) -> float:
        return (self.per_step or 0.0) * self.slack

    def out_of_time(self) -> bool:
        if not self.max_seconds:
            return False
        return self.time_s + self._ahead() > self.max_seconds if self.slack else self.time_s >= self.max_seconds

    def eval_due(self) -> bool:
        """True (once per mark) when a mark is reached, or would be by the next step."""
        due = False
        while self.marks and (self.time_s + self._ahead() > self.marks[0] if self.slack else self.time_s >= self.marks[0]):
            self.marks.pop(0)
            due = True
        return due
