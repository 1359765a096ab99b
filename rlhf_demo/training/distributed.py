"""Several processes, one run: data parallelism under ``accelerate launch --num_processes N``.

``accelerate launch [--cpu] --num_processes N -m rlhf_demo train ...`` starts N copies of the same
command with ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` set. Every copy loads the same model with the
same seed (the same weights), samples or reads its share of the global batch, and after each backward
the gradients are averaged over the processes, so every copy takes the same optimizer step and the N
copies stay one model:

    g = (1/N) Σ_r g_r        (g_r: the gradient of process r's share of the batch)

which is the gradient of the whole batch when the shares are the same size and the loss is a mean
over them. Process 0 alone writes the run folder; every record is first reduced over the processes
(``reduce_record``: the mean of each number) so ``metrics.jsonl`` describes the whole batch.

Our own PPO loop calls these functions directly (its forward runs through the LoRA trunk, which a
``DistributedDataParallel`` wrapper would not see); TRL's trainers do DDP themselves through
``accelerate`` and gather their own metrics. One process (no ``accelerate launch``) is the default,
and every function here is then a no-op: single-process numerics are unchanged.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist


def world_size() -> int:
    """Processes in this run (1 without ``accelerate launch``)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Process 0: the one that writes the run folder and prints."""
    return rank() == 0


def active() -> bool:
    return world_size() > 1 and dist.is_available() and dist.is_initialized()


def init() -> int:
    """Join the process group ``accelerate launch`` described in the environment (gloo on CPU, NCCL
    on CUDA, through ``accelerate.PartialState``, the same state TRL's trainers then reuse); returns
    the number of processes. Without ``accelerate launch`` it does nothing and returns 1."""
    n = world_size()
    if n > 1 and not dist.is_initialized():
        from accelerate import PartialState
        from accelerate.utils import parse_flag_from_env

        PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available())
    return n


def _launcher_processes() -> int:
    """``--num_processes`` of the ``accelerate launch`` that started this process (1 if none or not said)."""
    try:
        argv = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return 1
    if "launch" not in argv:
        return 1
    from accelerate.commands.launch import launch_command_parser

    known, _ = launch_command_parser().parse_known_args(argv[argv.index("launch") + 1 :])
    return int(known.num_processes or 1)


def _cpu_launch_processes() -> int:
    """N of an ``accelerate launch --cpu --num_processes N`` that started this one process (1 otherwise)."""
    from accelerate.utils import parse_flag_from_env

    if "WORLD_SIZE" in os.environ or "MASTER_ADDR" not in os.environ or not parse_flag_from_env("ACCELERATE_USE_CPU"):
        return 1
    return _launcher_processes()


def planned_processes() -> int:
    """Processes this run trains in: ``WORLD_SIZE`` under a launcher that set it, else the N that
    :func:`relaunch_cpu_processes` is about to start (1 without a launcher)."""
    return world_size() if "WORLD_SIZE" in os.environ else _cpu_launch_processes()


def relaunch_cpu_processes(module_argv: list[str], n: int | None = None) -> None:
    """Make ``accelerate launch --cpu --num_processes N`` start N processes.

    accelerate 1.16 starts several CPU processes only through ``mpirun``; without it ``--cpu`` runs
    one process (it sets ``ACCELERATE_USE_CPU`` and ``MASTER_ADDR``, no ``WORLD_SIZE``). In that case
    this process replaces itself by ``torch.distributed.run`` with N processes of the same command,
    as ``accelerate launch --multi_gpu`` would start them (gloo on CPU). Otherwise it returns.
    ``n``: :func:`planned_processes`, when the caller has read it already."""
    if "WORLD_SIZE" in os.environ:
        return
    n = _cpu_launch_processes() if n is None else n
    if n <= 1:
        return
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(n),
        "--master_addr",
        os.environ["MASTER_ADDR"],
        "--master_port",
        os.environ.get("MASTER_PORT", "29500"),
        *module_argv,
    ]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, cmd)


def share(total: int, what: str, unit: int = 1, n: int | None = None) -> int:
    """Process r's share of ``total`` items (a global batch) over ``n`` processes (default: this run's):
    total / N, which must be a whole multiple of ``unit`` (e.g. the mini-batches each share is cut
    into). ValueError, one line, if not."""
    n = n or world_size()
    if total % (n * unit) or total < n * unit:
        need = f"a multiple of {n * unit}" + (f" ({unit} per process × {n} processes)" if unit > 1 else "")
        raise ValueError(f"{what} = {total} cannot be split over {n} processes: it must be {need}; lower --num_processes or change {what}")
    return total // n


def sum_all(x: torch.Tensor) -> torch.Tensor:
    """Σ over the processes of a tensor (a new tensor; the tensor itself with one process)."""
    if not active():
        return x
    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y


def average_gradients(params: list[torch.Tensor]) -> None:
    """g ← (1/N) Σ_r g_r for every parameter, in one all-reduce of a flat buffer (a missing gradient
    counts as zero, so every process sends the same shapes)."""
    if not active():
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])  # [P]
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world_size()
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def broadcast_params(params: list[torch.Tensor]) -> None:
    """Every process starts from process 0's weights (they are equal already when seeded alike)."""
    if not active():
        return
    with torch.no_grad():
        for p in params:
            dist.broadcast(p.data, src=0)


def broadcast(obj: Any) -> Any:
    """Process 0's ``obj`` on every process (e.g. an evaluation only process 0 ran)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def reduce_record(record: dict) -> dict:
    """One record for the whole run from every process's: each number is the mean over the
    processes (kept as it is when all agree, so ``step`` stays a whole number); ``samples`` (the
    batch's rows) are concatenated in rank order; anything else is process 0's."""
    if not active():
        return record
    records: list = [None] * world_size()
    dist.all_gather_object(records, record)
    out = {}
    for k, v in records[0].items():
        vals = [r.get(k) for r in records]
        if k == "samples" and all(isinstance(x, list) for x in vals):
            out[k] = [row for x in vals for row in x]
        elif _number(v) and all(_number(x) for x in vals) and any(x != v for x in vals):
            out[k] = sum(float(x) for x in vals) / len(vals)
        else:
            out[k] = v
    return out


def barrier() -> None:
    if active():
        dist.barrier()


def max_all(x: float) -> float:
    """The largest of every process's ``x`` (a step's time: the processes wait for the slowest), so
    every process's clock, and each decision it drives (time budget, evaluation marks), agrees."""
    if not active():
        return x
    t = torch.tensor([float(x)], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t)


PROCESS_STREAM = 1_000_003
"""The per-process stream's spacing: process r samples its share from ``seed + PROCESS_STREAM · r`` (a
prime; the number every multi-process run so far was made with)."""


def seed_for(seed: int) -> int:
    """Process r's own seed stream for sampling its share (process 0, and a single process, keep ``seed``)."""
    return seed + PROCESS_STREAM * rank()


def share_rows(n: int, what: str) -> None:
    """Refuse more processes than data rows (each process must get at least one)."""
    if n < world_size():
        raise ValueError(f"{n} {what} cannot be shared by {world_size()} processes: lower --num_processes")
