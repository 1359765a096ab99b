"""Shared fixtures: a tiny random model (fast unit tests), the real default model (integration), one
real-model PPO run read by several integration tests, an in-process app server and a headless Debian
chromium (browser tests)."""

from __future__ import annotations

import io
import os
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from types import SimpleNamespace

import pytest

# Tests never write into the user's ./runs and never wait on the (unreachable) Hub.
_TMP = Path(tempfile.mkdtemp(prefix="rlhf-tests-"))
os.environ.setdefault("RLHF_DEMO_RUNS", str(_TMP / "runs"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import torch  # noqa: E402

_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))  # pytest-xdist's workers (pytest.ini: -n 2)
torch.set_num_threads(
    int(os.environ.get("RLHF_TEST_THREADS", "0")) or max(1, min(2, len(os.sched_getaffinity(0)) // _WORKERS))
)  # the cores shared out between the workers: two torch jobs of 2 threads each on 2 cores slow each other 5–20×

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def default_bundle():
    """The real embedded default model, loaded once (converted into the cache the first time)."""
    from rlhf_demo.models.loading import REGISTRY

    return REGISTRY.get("default")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama with the default model's tokenizer, saved as a model folder.
    Fast enough for unit tests of decoding, KL and training mechanics; numbers are meaningless."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlhf_demo.models.loading import load_tokenizer

    tok = load_tokenizer("default")
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(cfg)
    out = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model_dir):
    from rlhf_demo.models.loading import load_model

    return load_model(str(tiny_model_dir), device="cpu", dtype=torch.float32)


REAL_PPO_REWARD = "0.7*vader-positive + 0.3*on-topic - 0.5*repetition"
"""The shared real run's reward: the reward builder's example (``rewards.spec.EXAMPLE``), so its batch
rows carry three components."""
HUB_REPO = "someone/rlhf-lab-card-test"


@pytest.fixture(scope="session")
def real_ppo_run(tmp_path_factory):
    """One PPO run on the real default model, trained once and read by the tests that need a real run
    (the CLI smoke test, the model card, the short-run sanity checks, the reward builder, the token
    inspector) instead of each training its own (issue 24):

        train --algo ppo --steps 2 --batch-size 8 --reward SPEC --push-to-hub REPO --out RUN

    the quick preset otherwise, its final held-out evaluation included, offline (the card is written,
    nothing is pushed). Run in-process through the CLI's ``main``; ``python -m rlhf_demo train`` as a
    process is exercised by test_faults.py and test_ddp.py. ``rc``, ``out`` and ``err`` are the
    command's exit code and printed text: each reader asserts on them itself."""
    from rlhf_demo.cli.main import main

    run = tmp_path_factory.mktemp("real-ppo") / "ppo"
    argv = ["train", "--algo", "ppo", "--steps", "2", "--batch-size", "8", "--reward", REAL_PPO_REWARD]
    argv += ["--push-to-hub", HUB_REPO, "--out", str(run)]
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, redirect_stdout(out), redirect_stderr(err):
        mp.setenv("HF_HUB_OFFLINE", "1")
        rc = main(argv)
    return SimpleNamespace(path=run, argv=argv, rc=rc, out=out.getvalue(), err=err.getvalue(), reward=REAL_PPO_REWARD, repo=HUB_REPO)


def _close(demo) -> None:
    """``demo.close()``, finished when it stops halfway: it sets the app's asyncio stop event from this
    thread, which races the server's own heartbeat streams under load ("RuntimeError: deque mutated during
    iteration", seen once in 745 tests on two workers); the rest of close() then never closes the server."""
    try:
        demo.close()
    except RuntimeError:
        if demo.server:
            demo.server.close()


@pytest.fixture(scope="session")
def close_demo():
    """How the tests' own servers end: ``close_demo(demo)`` (see ``_close``)."""
    return _close


@pytest.fixture(scope="session")
def app_url():
    """The whole app served in-process on a free local port (shared by the browser/API tests)."""
    from rlhf_demo.ui.app import build_demo

    demo = build_demo()
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        yield demo.local_url.rstrip("/")
    finally:
        _close(demo)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright: use Debian's chromium (no `playwright install` here)."""
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1000}}


LONGEST_FIRST = (
    "ui/test_classroom.py",
    "test_train_api.py",
    "ui/test_first_click.py",
    "test_ddp.py",
    "ui/test_training_first_view.py",
    "ui/test_kl_theory.py",
    "ui/test_feedback_runs.py",
    "test_reward_model.py",
    "ui/test_training_ppo.py",
    "ui/test_overopt_ui.py",
    "test_cli_dpo.py",
    "test_dpo.py",
    "ui/test_training_reload.py",
    "test_grpo.py",
)
"""The longest test modules (seconds of the whole suite run one at a time, 2026-12-06: 162, 98, 97, 86, 67,
61, 59, 58, 52, 45, 44, 44, 41, 38), handed out first: pytest-xdist gives each worker a whole module
(--dist loadfile), so a long one started last would leave the other worker idle at the end. Only the
order changes; a stale list costs time, never a result."""


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    here = Path(__file__).parent

    def first(item) -> int:
        return rank.get(Path(item.fspath).relative_to(here).as_posix(), len(rank))

    items.sort(key=first)  # stable: every module keeps its own order
    if not Path(CHROMIUM).exists():
        skip = pytest.mark.skip(reason="Debian chromium not installed (scripts/setup.sh --dev installs it)")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)
