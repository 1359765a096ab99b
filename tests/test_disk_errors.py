"""Disk and errors (issue 23, item 4), at the core: odd text and bad uploads get one clear line; a reward
model is refused as a policy; saved and shipped adapters name their base by Hub id and carry their
tokenizer; short model names instead of server paths; exports and temporary files held in the quota."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from rlhf_demo.classroom import allowlist, limits
from rlhf_demo.data.preferences import PreferenceError, parse_preferences
from rlhf_demo.data.prompts import PromptError, parse_prompts
from rlhf_demo.textcheck import TextError, check_text

ASSETS = limits.ASSETS
REPO = ASSETS.parents[1]
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def one_line(msg: str) -> str:
    assert "\n" not in msg and "Traceback" not in msg and str(REPO) not in msg, msg
    return msg


# ----------------------------------------------------------------------------- odd text
@pytest.mark.parametrize(
    "text, says",
    [
        ("\ud800", "lone surrogate (U+D800 at position 1)"),
        ("The movie \udfff was", "lone surrogate (U+DFFF at position 11)"),
        ("nul\x00here", "NUL character (at position 4)"),
    ],
)
def test_typed_text_with_a_lone_surrogate_or_nul_gets_one_line(text, says):
    with pytest.raises(TextError) as err:
        check_text(text, "the prompt")
    assert says in one_line(str(err.value)) and str(err.value).startswith("the prompt")
    assert "\ud800" not in str(err.value) and "\x00" not in str(err.value)  # the bad text is never echoed
    assert check_text("The movie was 🎬\n\tok", "the prompt") == "The movie was 🎬\n\tok"
    with pytest.raises(TextError, match="must be text"):
        check_text(["a list"], "the prompt")


BIG = 4_900_000  # under the 5 MB upload limit: the parsers, not the size check, must answer


@pytest.mark.parametrize(
    "data, name, says",
    [
        (b"prompt\n" + b"a" * 1_900_000, "p.csv", "line 2 is 1.9 MB long"),
        (b"[" * 1_900_000, "p.jsonl", "line 1 is 1.9 MB long"),
        (b'{"prompt": ' + b"[" * 5000 + b"]" * 5000 + b"}\n", "p.jsonl", "nested more than"),
        (b'{"prompt": "\\ud800 hi"}\n', "p.jsonl", "lone surrogate"),
        (b"hello\x00world\n", "p.txt", "NUL bytes"),
    ],
)
def test_bad_prompt_uploads_get_one_clear_line(data, name, says):
    with pytest.raises(PromptError) as err:
        parse_prompts(data, name)
    assert says in one_line(str(err.value))


@pytest.mark.parametrize(
    "data, name, says",
    [
        (b"prompt,chosen,rejected\n" + b"a" * BIG, "p.csv", "line 2 is 4.9 MB long"),
        (b'prompt,chosen,rejected\n"' + b"a\n" * 200_000 + b'",a,b\n', "p.csv", "field larger than field limit"),
        (b"[" * BIG, "p.json", "nested more than"),
        (b"[" * BIG, "p.jsonl", "line 1 is 4.9 MB long"),
        (b'{"a":' * 9_000 + b"1" + b"}" * 9_000 + b"\n", "p.jsonl", "nested more than"),
        (b"prompt,chosen,rejected\nx\x00,a,b\n", "p.csv", "NUL bytes"),
    ],
)
def test_bad_preference_uploads_get_one_clear_line(data, name, says):
    t0 = time.perf_counter()
    with pytest.raises(PreferenceError) as err:
        parse_preferences(data, name)
    assert says in one_line(str(err.value))
    assert time.perf_counter() - t0 < 10


def test_a_pair_with_a_lone_surrogate_is_left_out_with_its_line():
    data = b'{"prompt": "\\ud800", "chosen": "a", "rejected": "b"}\n{"prompt": "x", "chosen": "a", "rejected": "b"}\n'
    out = parse_preferences(data, "p.jsonl")
    assert len(out) == 1 and "line 1: 'prompt' holds a lone surrogate" in out.errors[0]
    assert json.dumps(out.rows)  # what is kept serialises (a lone surrogate would not as UTF-8)


# ----------------------------------------------------------------------------- reward model as a policy
def test_a_reward_model_is_refused_as_a_policy_in_one_line():
    from rlhf_demo.models.loading import ModelLoadError, load_model

    for name in ("example-reward", str(ASSETS / "example-reward" / "policy")):
        with pytest.raises(ModelLoadError) as err:
            load_model(name, device="cpu")
        msg = one_line(str(err.value))
        assert "example-reward (shipped) is a reward model" in msg and "/" not in msg.split(":")[0]


def test_policy_choices_are_short_names_and_hold_no_reward_model(tmp_path):
    from rlhf_demo.runs.folder import policy_choices

    root = tmp_path / "runs"
    for name, src in (("ppo-20260101-000000-aaaaaa", "example-ppo"), ("ppo-20260101-000001-bbbbbb", "example-reward")):
        shutil.copytree(ASSETS / src, root / name)
        cfg = json.loads((root / name / "config.json").read_text())
        (root / name / "config.json").write_text(json.dumps({**cfg, "algo": "ppo"}))  # a SEQ_CLS adapter filed as PPO
    values = [v for _, v in policy_choices(root)]
    assert values == ["default", "run:ppo-20260101-000000-aaaaaa", "example-ppo", "example-bon", "example-dpo"]
    assert not any(os.sep in v for v in values)


# ----------------------------------------------------------------------------- short names
def test_short_model_names_resolve_through_the_one_check(tmp_path, monkeypatch):
    from rlhf_demo.runs.names import shown

    run = tmp_path / "ppo-20260101-000000-aaaaaa"
    shutil.copytree(ASSETS / "example-ppo", run)
    monkeypatch.delenv(limits.SHARED_ENV, raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("RLHF_DEMO_TEACHER_KEY", raising=False)
    assert allowlist.check_model("example-ppo") == str(ASSETS / "example-ppo" / "policy")
    assert allowlist.check_model("run:" + run.name, own_runs=[str(run)]) == str(run / "policy")
    assert allowlist.check_model("/some/typed/folder") == "/some/typed/folder"  # local use: typed paths still work
    monkeypatch.setenv(limits.SHARED_ENV, "1")
    assert allowlist.check_model("example-dpo") == str(ASSETS / "example-dpo" / "policy")
    assert allowlist.check_model("run:" + run.name, own_runs=[str(run)]) == str(run / "policy")
    for bad in ("run:" + run.name, "run:../x", "example-../../etc", "run:/etc"):
        with pytest.raises(limits.LimitError):
            allowlist.check_model(bad)  # not this session's: refused
    assert shown(str(ASSETS / "example-ppo" / "policy")) == "example-ppo (shipped)"
    assert shown(str(run / "policy")) == f"your run {run.name}"


def test_status_lines_name_runs_by_name(tmp_path):
    from types import SimpleNamespace

    from rlhf_demo.runs.folder import RunWriter
    from rlhf_demo.training.status import final_lines

    trainer = SimpleNamespace(status="finished", message="done", last_eval=None, cfg=SimpleNamespace(algo="ppo"))
    line = final_lines(trainer, tmp_path / "ppo-20260101-000000-aaaaaa")[0]
    assert "ppo-20260101-000000-aaaaaa" in line and str(tmp_path) not in line
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(FileExistsError) as err:
        RunWriter.check(tmp_path / "busy")
    assert str(tmp_path) not in str(err.value)


# ----------------------------------------------------------------------------- adapters
def test_shipped_adapters_name_a_hub_id_and_carry_their_tokenizer():
    from transformers import AutoTokenizer

    policies = sorted(ASSETS.glob("example-*/policy"))
    assert len(policies) >= 3
    for pol in policies:
        cfg = json.loads((pol / "adapter_config.json").read_text())
        assert cfg["base_model_name_or_path"] == HUB_ID, pol
        for f in pol.iterdir():
            if f.suffix in (".json", ".md", ".txt", ".jinja") and f.stat().st_size < 1_000_000:
                text = f.read_text()
                assert "/root/" not in text and "/.cache/" not in text and str(REPO) not in text, f
        tok = AutoTokenizer.from_pretrained(str(pol))
        assert tok("The movie was")["input_ids"] and tok.eos_token == "<|im_end|>"


def test_a_saved_lora_policy_names_the_hub_id_and_loads_back_offline(tmp_path):
    from transformers import AutoTokenizer

    from rlhf_demo.models.loading import load_model
    from rlhf_demo.models.lora import build_policy

    policy = build_policy("default", lora_layers=2, device="cpu")
    out = policy.save(tmp_path / "run" / "policy")
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == HUB_ID
    assert (out / "base_model.txt").read_text().strip() == "default"
    card = (out / "README.md").read_text()
    assert "/.cache/" not in card and HUB_ID in card
    assert AutoTokenizer.from_pretrained(str(out))("The movie was")["input_ids"]
    bundle = load_model(str(out), device="cpu")  # our loader: offline, on the embedded base
    assert bundle.model.config.vocab_size == 49152
    (out / "base_model.txt").unlink()  # a download without our note: the Hub id → embedded
    assert load_model(str(out), device="cpu").model is not None


# ----------------------------------------------------------------------------- disk
def test_exports_land_in_a_cleaned_folder_counted_in_the_quota(tmp_path, monkeypatch):
    import tempfile

    from rlhf_demo.classroom import quota

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    path = quota.export_path("metrics.csv")
    assert quota.exports_dir() in path.parents and not path.exists()
    path.write_bytes(b"x" * 1000)
    old = time.time() - 7200
    os.utime(path, (old, old))
    quota.export_path("metrics.csv")  # the next export sweeps files past the age
    assert not path.exists() and not path.parent.exists()

    root = tmp_path / "runs"
    run = root / "ppo-1"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "summary.json").write_text('{"status": "finished"}')
    (run / "w").write_bytes(b"r" * 4000)
    files = []
    for i in range(10):  # ten 1 kB uploads, oldest first
        f = tmp_path / "gradio-like" / f"{i}" / "up.bin"
        f.parent.mkdir(parents=True)
        f.write_bytes(b"u" * 1000)
        os.utime(f, (time.time() - 100 + i, time.time() - 100 + i))
        files.append(f)
    removed = quota.enforce(root, 9100, tmp_dirs=(tmp_path / "gradio-like",))
    assert [Path(r).parent.name for r in removed] == ["0", "1", "2", "3", "4"]  # temp files count, oldest go first
    assert run.exists()
    assert quota.enforce(root, 4000, counted=(tmp_path / "gradio-like",)) == ["ppo-1"]  # uploads count, runs go
