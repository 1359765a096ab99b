"""The reward builder's pure part (issue 27): rows (component, weight) ↔ spec text, what a face offers
(the registry through the shared allowlist: never ``py:`` there), a Python file turned into a term or
into one line, and best-of-N's ``reward`` knob checked like training's."""

from __future__ import annotations

import pytest

from rlhf_demo.classroom import allowlist, limits
from rlhf_demo.classroom.limits import LimitError, Limits
from rlhf_demo.decoding.config import DecodingConfig, DecodingError
from rlhf_demo.rewards import choices
from rlhf_demo.rewards.functions import REWARD_CHOICES, RewardError
from rlhf_demo.rewards.python import SHARED_REFUSAL
from rlhf_demo.rewards.spec import EXAMPLE, MAX_TERMS, SpecError, parse_spec, rows_of, spec_of, with_term, without_term

SHARED = Limits(shared=True)


@pytest.fixture(autouse=True)
def local(monkeypatch):
    """Local use unless a test says otherwise (the environment may be a shared server's)."""
    for env in (limits.SHARED_ENV, "SPACE_ID", "RLHF_DEMO_TEACHER_KEY"):
        monkeypatch.delenv(env, raising=False)


# ----------------------------------------------------------------------------- rows ↔ spec
@pytest.mark.parametrize(
    "rows, spec",
    [
        ([("vader-positive", 1.0)], "vader-positive"),
        ([("vader-positive", 0.7), ("on-topic", 0.3), ("repetition", -0.5)], EXAMPLE),
        ([("repetition", -1.0), ("length", 2.0)], "-repetition + 2*length"),
        ([("rm:runs/rm-demo", 0.5), ("keyword:great", -0.1)], "0.5*rm:runs/rm-demo - 0.1*keyword:great"),
        ([("py:/tmp/up load/../r.py:score", 1.0)], None),  # a space: not one term
        ([("length", 0.0), ("on-topic", 1e-3)], "0*length + 0.001*on-topic"),
    ],
)
def test_rows_and_spec_round_trip(rows, spec):
    if spec is None:
        with pytest.raises(SpecError, match=r"reward builder: 'py:/tmp/up load/\.\./r.py:score' is not one term"):
            spec_of(rows)
        return
    assert spec_of(rows) == spec
    assert rows_of(spec) == rows  # and back: the rows the builder draws from the text
    assert [(t.name, t.weight) for t in parse_spec(spec_of(rows))] == rows


def test_rows_from_any_spelling_are_written_canonically():
    assert rows_of("  - 2*length   +   .5*on-topic ") == [("length", -2.0), ("on-topic", 0.5)]
    assert spec_of(rows_of("- 2*length   +   .5*on-topic")) == "-2*length + 0.5*on-topic"


@pytest.mark.parametrize(
    "rows, message",
    [
        ([("length", 1.0), ("length", 2.0)], "names 'length' twice"),
        ([("", 1.0)], "row 1 has no component"),
        ([("length", 1.0), (None, 1.0)], "row 2 has no component"),
        ([("length", None)], "the weight of 'length' must be a number"),
        ([("length", float("inf"))], "the weight of 'length' must be a number"),
        ([("-length", 1.0)], "does not start with '-'"),
        ([(f"k{i}", 1.0) for i in range(MAX_TERMS + 1)], f"at most {MAX_TERMS}"),
    ],
)
def test_bad_rows_are_one_line(rows, message):
    with pytest.raises(SpecError, match=message) as err:
        spec_of(rows)
    assert "\n" not in str(err.value)


def test_add_and_remove_a_term():
    assert with_term("", "length") == "length" and with_term("vader-positive", "length", -0.5) == "vader-positive - 0.5*length"
    assert without_term(EXAMPLE, 1) == "0.7*vader-positive - 0.5*repetition"
    assert without_term(EXAMPLE, 0) == "0.3*on-topic - 0.5*repetition"
    with pytest.raises(SpecError, match="at least one component"):
        without_term("length", 0)
    with pytest.raises(SpecError, match="no row 4"):
        without_term(EXAMPLE, 3)
    with pytest.raises(SpecError, match="names 'length' twice"):
        with_term("length", "length")
    assert choices.next_component(["vader-positive"], ["vader-positive", "length"]) == "length"
    assert choices.next_component(["length"], ["length"]) is None


# ----------------------------------------------------------------------------- what is offered
def test_offered_is_the_registry_and_shared_offers_only_what_the_allowlist_builds(monkeypatch):
    assert choices.offered() == REWARD_CHOICES and choices.python_allowed()
    sneaky = [*REWARD_CHOICES, "py:evil.py:score", "rm:/etc", "hf:someone/else:POS"]  # what a future entry could be
    monkeypatch.setattr(choices, "REWARD_CHOICES", sneaky)
    assert choices.offered() == sneaky  # locally: everything
    shared = choices.offered(SHARED)
    assert shared == REWARD_CHOICES and not any(c.startswith("py:") for c in shared)
    assert all(allowlist.check_reward(c, SHARED) == c for c in shared)  # nothing offered is then refused
    assert not choices.python_allowed(SHARED)


# ----------------------------------------------------------------------------- a Python file → a term
GOOD = "def score(texts):\n    return [float(len(t)) for t in texts]\n\ndef short(texts):\n    return [1.0]\n"


def test_python_file_becomes_a_term(tmp_path):
    good = tmp_path / "good.py"
    good.write_text(GOOD)
    assert choices.python_term(str(good), "score") == f"py:{good}:score"
    spaced = tmp_path / "my reward+1.py"  # as an upload may be named: copied beside itself under a plain name
    spaced.write_text(GOOD)
    term = choices.python_term(str(spaced), " score ")
    assert term == f"py:{tmp_path / 'my_reward_1.py'}:score" and spec_of([("length", 1.0), (term, 0.5)]).endswith(f"0.5*{term}")


@pytest.mark.parametrize(
    "text, func, message",
    [
        ("def score(texts:\n", "score", r"importing .* raised SyntaxError"),
        (GOOD, "missing", "defines no 'missing'"),
        (GOOD, "short", r"reward function short .* returned 1 scores for 2 texts"),
        (GOOD, "not a name", "is not a function name"),
        ("raise RuntimeError('nope')\n", "score", "raised RuntimeError: nope"),
    ],
)
def test_python_file_errors_are_one_line(tmp_path, text, func, message):
    path = tmp_path / "r.py"
    path.write_text(text)
    with pytest.raises(RewardError, match=message) as err:
        choices.python_term(str(path), func)
    assert "\n" not in str(err.value)


def test_python_file_is_refused_on_a_shared_server(tmp_path, monkeypatch):
    path = tmp_path / "r.py"
    path.write_text(GOOD)
    monkeypatch.setenv(limits.SHARED_ENV, "1")
    with pytest.raises(RewardError, match="^reward: py: ") as err:
        choices.python_term(str(path), "score")
    assert str(err.value) == SHARED_REFUSAL


# ----------------------------------------------------------------------------- best-of-N's reward knob
def test_best_of_n_reward_is_checked_like_trainings(tmp_path, monkeypatch):
    bon = dict(strategy="best-of-n", num_samples=4)
    assert DecodingConfig().reward == "vader-positive"
    assert DecodingConfig(**bon, reward=" 0.5*on-topic - repetition ").validate().reward == "0.5*on-topic - repetition"
    with pytest.raises(DecodingError, match="^best-of-N reward spec: 'on-topic\\+x' is not one term"):
        DecodingConfig(**bon, reward="on-topic+x").validate()
    py = f"py:{tmp_path / 'r.py'}:score"
    assert DecodingConfig(**bon, reward=py).validate().reward == py  # locally: a file is fine
    monkeypatch.setenv(limits.SHARED_ENV, "1")
    for spec in (py, f"vader-positive - {py}"):
        with pytest.raises(DecodingError, match="^best-of-N reward: py: .*only locally") as err:
            DecodingConfig(**bon, reward=spec).validate()
        assert "\n" not in str(err.value)
    with pytest.raises(DecodingError, match="shared server builds"):
        DecodingConfig(**bon, reward="rm:/etc").validate()
    assert DecodingConfig(strategy="sample", reward=py).validate().strategy == "sample"  # only best-of-n scores with it
    with pytest.raises(LimitError):
        allowlist.check_reward(py)  # the same allowlist
