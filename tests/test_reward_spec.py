"""The reward builder (issue 27): the spec's parser, the weighted sum, the response-only components,
``py:PATH:FUNC`` and its refusal on a shared server, and PPO trained on them (CLI; the real model on a spec)."""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf_demo.classroom import allowlist, limits
from rlhf_demo.classroom.limits import LimitError
from rlhf_demo.cli.main import build_parser, main
from rlhf_demo.evaluate import distinct_n, on_topic
from rlhf_demo.rewards.components import repetition
from rlhf_demo.rewards.functions import RewardError, VaderReward, make_reward, score_pairs
from rlhf_demo.rewards.spec import EXAMPLE, SpecError, Term, format_spec, parse_spec, single_name

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def local(monkeypatch):
    """Local use unless a test says otherwise (the environment may be a shared server's)."""
    for env in (limits.SHARED_ENV, "SPACE_ID", "RLHF_DEMO_TEACHER_KEY"):
        monkeypatch.delenv(env, raising=False)


# ----------------------------------------------------------------------------- the parser
@pytest.mark.parametrize(
    "spec, terms",
    [
        ("vader-positive", [(1.0, "vader-positive")]),
        (EXAMPLE, [(0.7, "vader-positive"), (0.3, "on-topic"), (-0.5, "repetition")]),
        ("-0.5*repetition", [(-0.5, "repetition")]),
        ("-repetition + vader-negative", [(-1.0, "repetition"), (1.0, "vader-negative")]),
        ("- 2*length", [(-2.0, "length")]),
        ("rm:runs/rm-demo", [(1.0, "rm:runs/rm-demo")]),
        ("0.5*rm:runs/rm-demo - 1e-1*keyword:great", [(0.5, "rm:runs/rm-demo"), (-0.1, "keyword:great")]),
        ("hf:lvwerra/distilbert-imdb:POSITIVE:prob + .5*length", [(1.0, "hf:lvwerra/distilbert-imdb:POSITIVE:prob"), (0.5, "length")]),
        ("  vader-positive   -   0*py:my-dir/r.py:score  ", [(1.0, "vader-positive"), (-0.0, "py:my-dir/r.py:score")]),
    ],
)
def test_parse_spec(spec, terms):
    got = parse_spec(spec)
    assert [(t.weight, t.name) for t in got] == terms
    assert parse_spec(format_spec(got)) == got  # the canonical text reads back the same


def test_single_name_is_only_a_bare_name():
    assert single_name("vader-positive") == "vader-positive"
    assert single_name(" rm:runs/rm-demo ") == "rm:runs/rm-demo"
    for spec in ("1*vader-positive", "-vader-positive", EXAMPLE, "a - b", ""):
        assert single_name(spec) is None
    assert format_spec([Term(-1.0, "a"), Term(0.25, "b"), Term(-2.0, "c")]) == "-a + 0.25*b - 2*c"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("vader-positive -repetition", "not one term"),
        ("vader-positive+length", "not one term"),
        ("vader-positive + + length", "not one term"),
        ("-", "a term is missing"),
        ("0.7*", "no reward name"),
        ("x*vader-positive", "weight 'x'"),
        ("vader-positive + -1*length", "weight '-1'"),
        ("0.5*0.5*length", "more than one '*'"),
        ("1e999*length", "too large"),
        ("length + 2*length", "twice"),
        (" + ".join(["length"] + [f"keyword:w{i}" for i in range(8)]), "at most 8"),
    ],
)
def test_bad_specs_are_one_line(spec, message):
    with pytest.raises(SpecError, match=message) as err:
        parse_spec(spec)
    assert "\n" not in str(err.value)
    if spec.strip():  # make_reward says the same, as a RewardError (an empty spec: "unknown reward ''")
        with pytest.raises(RewardError, match=message):
            make_reward(spec)


# ----------------------------------------------------------------------------- components and the sum
def test_single_name_is_todays_reward():
    r = make_reward("vader-positive")
    assert type(r) is VaderReward
    texts = ["This movie was wonderful", "This movie was awful and boring"]
    direct = VaderReward(+1.0)
    assert r(texts) == direct(texts) and r.last_details == direct.last_details
    assert r.last_components == {"vader-positive": r(texts)}


def test_repetition_by_hand():
    assert repetition("") == 0.0 and repetition("one") == 0.0
    assert repetition("the film was great") == 0.0
    assert repetition("love love love love") == pytest.approx(2 / 3)  # bigrams (love love) ×3: 1 distinct
    assert repetition("a b a b") == pytest.approx(1 / 3)  # (a b), (b a), (a b): 2 distinct of 3
    for t in ("a b a b", "great great fun and great great fun", "x y z"):
        assert repetition(t) == pytest.approx(1 - distinct_n([t], 2))  # the evaluation's distinct-2


def test_components_score_the_response_alone():
    queries = ["This movie was", "This film had"]
    responses = [" great great great great", " actors I loved, truly loved"]
    on, rep = make_reward("on-topic"), make_reward("repetition")
    assert score_pairs(on, queries, responses) == [0.0, 1.0]  # "actors" is a film word; the queries are not scored
    assert [bool(on_topic(r)) for r in responses] == [False, True]  # the evaluation's own judgement
    assert on([q + r for q, r in zip(queries, responses)]) == [1.0, 1.0]  # whole texts only: the openings name the film
    assert score_pairs(rep, queries, responses) == pytest.approx([2 / 3, 0.0])


def test_composite_is_the_weighted_sum_by_hand():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    queries = ["This movie was", "I watched it and", "The plot"]
    responses = [" great great great great", " the acting was superb and moving", " made me sad"]
    r = make_reward(EXAMPLE)
    got = score_pairs(r, queries, responses)
    vader = [SentimentIntensityAnalyzer().polarity_scores(q + y)["compound"] for q, y in zip(queries, responses)]
    topic = [0.0, 1.0, 0.0]  # only "acting" names something of a film in the responses
    reps = [2 / 3, 0.0, 0.0]
    want = [0.7 * v + 0.3 * t - 0.5 * p for v, t, p in zip(vader, topic, reps)]
    assert got == pytest.approx(want, abs=1e-12)
    want_parts = {"vader-positive": vader, "on-topic": topic, "repetition": reps}
    assert set(r.last_components) == set(want_parts)
    for name, scores in want_parts.items():
        assert r.last_components[name] == pytest.approx(scores, abs=1e-12)
    assert r.last_details[1] == pytest.approx({"vader-positive": vader[1], "on-topic": 1.0, "repetition": 0.0})
    assert r.name == EXAMPLE and r.weights == {"vader-positive": 0.7, "on-topic": 0.3, "repetition": -0.5}
    total, details = r.score([q + y for q, y in zip(queries, responses)])  # texts only: every part scores the text
    assert details[0]["on-topic"] == 1.0 and len(total) == 3


def test_unknown_component_names_the_builder():
    with pytest.raises(RewardError, match="unknown reward 'sentiment'.*weighted sum"):
        make_reward("0.5*sentiment + length")


# ----------------------------------------------------------------------------- py:PATH:FUNC
REWARD_FILE = """
import math

def score(texts):
    return [t.count("e") / 10 - 0.01 * len(t.split()) for t in texts]

def boom(texts):
    raise ZeroDivisionError("no\\nsecond line")

def short(texts):
    return [1.0] * (len(texts) - 1)

def nan(texts):
    return [math.nan] + [0.0] * (len(texts) - 1)

def word(texts):
    return ["high"] * len(texts)

NOT_A_FUNCTION = 3
"""


@pytest.fixture
def reward_file(tmp_path) -> Path:
    path = tmp_path / "my_reward.py"
    path.write_text(REWARD_FILE)
    return path


def expected(texts):
    return [t.count("e") / 10 - 0.01 * len(t.split()) for t in texts]


def test_py_reward_calls_the_function(reward_file):
    texts = ["This movie was excellent", "eee", ""]
    r = make_reward(f"py:{reward_file}:score")
    assert r(texts) == expected(texts)
    assert score_pairs(r, ["This movie", "e"], [" was excellent", "ee"]) == expected(
        ["This movie was excellent", "eee"]
    )  # query + response
    both = make_reward(f"0.5*py:{reward_file}:score + length")
    assert both(texts) == pytest.approx([0.5 * e + len(t.split()) / 10 for e, t in zip(expected(texts), texts)])


@pytest.mark.parametrize(
    "func, message",
    [
        ("boom", r"reward function boom \(py:.*my_reward.py:boom\) raised ZeroDivisionError: no$"),
        ("short", r"reward function short .* returned 2 scores for 3 texts"),
        ("nan", r"reward function nan .* non-finite score \(nan\) for text 0"),
        ("word", r"reward function word .* returned str 'high' for text 0, not a number"),
    ],
)
def test_py_reward_errors_name_the_function(reward_file, func, message):
    r = make_reward(f"py:{reward_file}:{func}")
    with pytest.raises(RewardError, match=message) as err:
        r(["a", "b", "c"])
    assert "\n" not in str(err.value)


def test_py_reward_load_errors(reward_file, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_here\n")
    cases = [
        (f"py:{tmp_path / 'missing.py'}:score", "no such file"),
        (f"py:{reward_file}:missing", "defines no 'missing'"),
        (f"py:{reward_file}:NOT_A_FUNCTION", "is a int, not a function"),
        (f"py:{broken}:score", "raised ModuleNotFoundError"),
        (f"py:{reward_file}", "py:PATH:FUNC"),
    ]
    for spec, message in cases:
        with pytest.raises(RewardError, match=message) as err:
            make_reward(spec)
        assert "\n" not in str(err.value)


def test_shared_mode_refuses_py(reward_file, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(limits.SHARED_ENV, "1")
    shared = limits.current()
    for spec in (f"py:{reward_file}:score", f"0.5*vader-positive - py:{reward_file}:score"):
        with pytest.raises(LimitError, match=r"^reward: py: .*only locally") as err:
            allowlist.check_reward(spec, shared)
        assert "\n" not in str(err.value)
    with pytest.raises(RewardError, match="py:"):  # and the reward itself never loads the file there
        make_reward(f"py:{reward_file}:score")
    assert allowlist.check_reward(EXAMPLE, shared) == EXAMPLE  # the built-in components are fine
    with pytest.raises(LimitError, match="shared server builds"):
        allowlist.check_reward("0.5*vader-positive + rm:/etc", shared)
    argv = ["train", "--algo", "ppo", "--steps", "2", "--batch-size", "8", "--reward", f"py:{reward_file}:score"]
    rc = main([*argv, "--out", str(tmp_path / "refused")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: reward: py:")
    assert not (tmp_path / "refused").exists()


def test_reward_flag_takes_a_spec_that_starts_with_minus(tmp_path):
    spec = "-0.5*repetition + vader-positive"
    args = build_parser().parse_args(["train", "--algo", "ppo", "--out", str(tmp_path / "x"), f"--reward={spec}"])
    assert args.reward == spec


# ----------------------------------------------------------------------------- PPO: rows carry components
def test_ppo_rows_carry_components(tiny_model_dir):
    from rlhf_demo.ppo.config import preset
    from rlhf_demo.ppo.trainer import PPOTrainer

    cfg = preset(
        "quick-cpu",
        model=str(tiny_model_dir),
        reward=EXAMPLE,
        gold_reward="none",
        batch_size=4,
        num_mini_batches=1,
        ppo_epochs=1,
        steps=1,
        response_tokens=(4, 4),
        eval_final=False,
        device="cpu",
    )
    trainer = PPOTrainer(cfg, prompts=["The movie was", "I watched this film"])
    rec = next(r for r in trainer.train() if "samples" in r)
    for row in rec["samples"]:
        c = row["components"]
        assert set(c) == {"vader-positive", "on-topic", "repetition"}
        assert row["reward"] == pytest.approx(0.7 * c["vader-positive"] + 0.3 * c["on-topic"] - 0.5 * c["repetition"], abs=1e-6)
        assert c["on-topic"] == float(on_topic(row["response"])) and c["repetition"] == pytest.approx(repetition(row["response"]))


# ----------------------------------------------------------------------------- the done-when (CLI; the real model)
def _batch(out: Path) -> list[dict]:
    """The batch rows of a 2-update PPO run at batch 8."""
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    batch = [r for r in rows if r["kind"] == "batch"]
    assert len(batch) == 16 and {r["step"] for r in batch} == {1, 2}
    return batch


def test_ppo_trains_on_a_python_function(reward_file, tmp_path, tiny_model_dir):
    """``python -m rlhf_demo train --reward=py:FILE:FUNC`` as a process (the function is loaded there); the
    tiny model: what is checked is the reward's path, which no model changes (the real model's run on a
    built reward is the next test)."""
    out = tmp_path / "ppo-py"
    cmd = [sys.executable, "-m", "rlhf_demo", "train", "--algo", "ppo", "--steps", "2", "--batch-size", "8"]
    p = subprocess.run(
        [*cmd, f"--reward=py:{reward_file}:score", "--model", str(tiny_model_dir), "--out", str(out), "--no-eval-final"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=600,
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    for row in _batch(out):
        want = expected([row["query"] + row["response"]])[0]
        assert row["reward"] == struct.unpack("f", struct.pack("f", want))[0]  # the batch's rewards are float32
        assert row["components"] == {f"py:{reward_file}:score": want}  # the function's own float


@pytest.mark.integration
def test_ppo_trains_on_a_builder_spec(real_ppo_run):
    """conftest's shared real-model run, trained on ``--reward EXAMPLE``."""
    assert real_ppo_run.rc == 0 and real_ppo_run.reward == EXAMPLE, real_ppo_run.err[-2000:]
    for row in _batch(real_ppo_run.path):
        c = row["components"]
        assert set(c) == {"vader-positive", "on-topic", "repetition"}
        assert row["reward"] == pytest.approx(0.7 * c["vader-positive"] + 0.3 * c["on-topic"] - 0.5 * c["repetition"], abs=1e-6)
        assert c["repetition"] == pytest.approx(repetition(row["response"])) and math.isfinite(c["vader-positive"])
