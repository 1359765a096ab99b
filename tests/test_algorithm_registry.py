"""The algorithm registry (``rlhf_demo.algorithms``): a fifth algorithm touches its own declaration and
one registry call, nothing shared. A tiny toy algorithm, registered here only (its config a small
``TrainerConfig``, its trainer a generator that yields two records, no model), shows up in the CLI's
``train --algo`` choices and trains through ``train``, in the Training tab's sub-tabs, in the named API,
in the status lines, in the Runs tab's table, reward–KL points (its marker and label) and comparison
curves, in its model card, and in the shared server's memory model. Once unregistered it is gone."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from rlhf_demo import algorithms
from rlhf_demo.algorithms import ALGORITHMS, Algorithm
from rlhf_demo.classroom import costs, limits
from rlhf_demo.config import TrainerConfig, knob
from rlhf_demo.knobs import max_seconds_knob, seed_knob
from rlhf_demo.training.status import step_head

TOY = "toy"


@dataclass
class ToyConfig(TrainerConfig):
    algo = TOY
    PRESETS = {"quick": {}, "long": {"steps": 4}}
    PRESET_LABELS = {"quick": "Quick", "long": "Long"}
    DEFAULT_PRESET = "quick"

    model: str = knob("default", "Model the toy pretends to train.", kind="str", group="Run", label="Model")
    seed: int = seed_knob()
    steps: int = knob(2, "Toy steps.", kind="int", lo=1, hi=10, group="Run", label="Steps")
    max_seconds: float = max_seconds_knob()
    size: int = knob(3, "How much memory the toy says it needs, in GB.", kind="int", lo=0, hi=100, group="Run", label="Size")


class ToyPolicy:
    def save(self, path, meta=None) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "toy.json").write_text(json.dumps(meta or {}))


class ToyTrainer:
    """Everything ``write_run`` asks of a trainer, and nothing else: ``steps`` records, the last with a
    held-out evaluation."""

    def __init__(self, cfg: ToyConfig, prompts=None, *, stop=None, progress=None):
        self.cfg, self.prompts, self.policy = cfg, prompts, ToyPolicy()
        self.status, self.message, self.step_no, self.time_s = "running", "", 0, 0.0
        self.last_eval, self.before_after = None, []

    def train(self):
        for step in range(1, self.cfg.steps + 1):
            self.step_no, self.time_s = step, 0.01 * step
            rec = {"step": step, "time_s": self.time_s, "toy/score": 0.5 * step}
            if step == self.cfg.steps:
                self.last_eval = {"reward_mean": 0.3, "reward_sem": 0.05, "kl": 1.5, "distinct2": 0.9, "n": 4}
                rec |= {f"eval/{k}": v for k, v in self.last_eval.items() if k != "n"}
            yield rec
        self.status, self.message = "finished", "the toy ran its steps"

    def run_info(self) -> dict:
        return {}


def toy_status(cfg: ToyConfig, rec: dict, total: int) -> list[str]:
    return [step_head(rec, total, cfg.max_seconds) + f" · toy score {rec['toy/score']:.2f}"]


def build(ctx, demo, alg) -> None:
    """The toy's Training sub-tab."""
    import gradio as gr

    gr.Markdown(f"the {alg.label} panel", elem_id="toy-panel")


TOY_ALGORITHM = Algorithm(
    name=TOY,
    label="Toy",
    config=ToyConfig,
    trainer=f"{__name__}:ToyTrainer",
    from_pairs=False,
    what="a toy that trains nothing",
    blurb="a test's algorithm.",
    status=toy_status,
    card_keys=("toy/score", "eval/reward_mean"),
    compare_keys=(("Toy score", "toy/score"),),
    peak_bytes=lambda cfg: cfg.size * 1e9,
    peak_advice="size",
    symbol="hexagon",
    panel=__name__,
)


@pytest.fixture
def toy():
    algorithms.register(TOY_ALGORITHM)
    try:
        yield TOY_ALGORITHM
    finally:
        algorithms.unregister(TOY)


def test_the_shipped_algorithms_are_declared_once_each():
    assert list(ALGORITHMS) == ["ppo", "dpo", "reward", "grpo", "bon"]
    for name, alg in ALGORITHMS.items():
        assert alg.config.algo == name and alg.panel and alg.curves and algorithms.resolve(alg.curves)
    assert algorithms.get(" DPO ") is ALGORITHMS["dpo"] and algorithms.find("nope") is None
    with pytest.raises(ValueError, match="algo must be one of ppo, dpo, reward, grpo, bon; got 'nope'"):
        algorithms.get("nope")
    with pytest.raises(ValueError, match="already registered"):
        algorithms.register(ALGORITHMS["ppo"])
    assert [a.is_policy for a in ALGORITHMS.values()] == [True, True, False, True, True]


def _algo_choices() -> list[str]:
    from rlhf_demo.cli.main import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    return next(a for a in train._actions if a.dest == "algo").choices


def test_toy_in_the_cli_choices_and_gone_after(toy):
    assert _algo_choices() == ["ppo", "dpo", "reward", "grpo", "bon", TOY]
    algorithms.unregister(TOY)
    assert TOY not in _algo_choices()


def test_toy_trains_through_the_cli_and_shows_in_the_runs_tab(toy, tmp_path, capsys):
    from rlhf_demo.cli.main import main
    from rlhf_demo.plots.runs import frontier_figure, overlay_figure
    from rlhf_demo.runs.card import card_text
    from rlhf_demo.runs.compare import eval_points, find_runs, load_curves, runs_table

    out = tmp_path / "runs" / "toy-run"
    assert main(["train", "--algo", TOY, "--out", str(out), "--steps", "2"]) == 0
    said = capsys.readouterr()
    assert "Step 2/2" in said.out and "toy score 1.00" in said.out  # the toy's own status line
    assert "Held-out at the end: reward +0.300" in said.out and "Toy on default" in said.err

    runs = find_runs(tmp_path / "runs")
    table = runs_table(runs)
    row = table[table["run"] == "toy-run"].iloc[0]
    assert row["algo"] == TOY and row["held-out reward"] == 0.3 and row["status"] == "finished"
    pts = eval_points(runs, base_reward=0.1)
    mine = pts[pts["run"] == "toy-run"]
    assert mine[["label", "symbol"]].values.tolist() == [["Toy", "hexagon"]]
    trace = next(t for t in frontier_figure(pts).data if t.name == "toy-run (Toy)")
    assert trace.marker.symbol == "hexagon"
    titles = [a.text for a in overlay_figure(load_curves(runs)).layout.annotations]
    assert "Toy score (Toy)" in titles
    card = card_text(out)
    assert "a toy that trains nothing" in card and "| step | toy/score | eval/reward_mean |" in card


def test_toy_in_the_training_tab(toy, tmp_path):
    import gradio as gr

    from rlhf_demo.ui import training
    from rlhf_demo.ui.context import AppContext

    assert [a.name for a in training.sub_tabs()] == ["ppo", "dpo", "reward", "grpo", "bon", TOY]
    with gr.Blocks() as demo:
        training.build(AppContext(runs_dir=tmp_path / "runs"), demo)
    blocks = {getattr(b, "elem_id", None): b for b in demo.blocks.values()}
    assert [c[0] for c in blocks["training-algo"].choices] == ["PPO", "DPO", "Reward model", "GRPO", "Best-of-N distillation", "Toy"]
    assert "Toy: a test's algorithm." in blocks["training-algo"].info
    assert "training-panel-toy" in blocks and blocks["toy-panel"].value == "the Toy panel"


def test_toy_in_the_named_api_status_lines_and_memory_model(toy):
    from rlhf_demo.training.status import final_lines, progress_lines
    from rlhf_demo.ui.api_training import build_config

    cfg, preset = build_config(TOY, "long", '{"size": 1}', limits.Limits(shared=False))
    assert isinstance(cfg, ToyConfig) and (cfg.steps, cfg.size, preset) == (4, 1, "long")
    assert progress_lines(cfg, {"step": 1, "time_s": 2.0, "toy/score": 0.5}, 4)[0].startswith("Step 1/4 · training time 2 s")
    trainer = algorithms.make_trainer(cfg)
    assert isinstance(trainer, ToyTrainer) and len(list(trainer.train())) == 4
    assert final_lines(trainer)[0] == "finished: the toy ran its steps."
    shared = limits.Limits(shared=True)
    costs.check_training(ToyConfig(size=1, max_seconds=60.0).validate(), shared)  # 1 GB fits
    with pytest.raises(limits.LimitError, match=r"this TOY run would hold ≈3.0 GB of tensors.*lower size"):
        costs.check_training(ToyConfig(size=3, max_seconds=60.0).validate(), shared)
