"""One config convention beyond the trainers (issue #24, item 4): the decoding knobs and the four small
configs (evaluation, estimator lab, candidates, synthetic preferences) declare their knobs with the
same metadata; ``generate`` and ``preferences`` build their flags from it, the Playground its widgets,
and the public flags the README shows keep working; a knob two trainers share means the same in both
(``rlhf_demo/knobs.py``). No model is loaded here."""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

import pytest

from rlhf_demo.cli.main import build_parser
from rlhf_demo.config import KnobConfig
from rlhf_demo.data.preferences import SynthConfig
from rlhf_demo.decoding.config import DecodingConfig, DecodingError
from rlhf_demo.evaluate import EvalConfig
from rlhf_demo.kl.analysis import KLInputError
from rlhf_demo.kl.lab import EstimatorLabConfig
from rlhf_demo.theory.candidates import CandidatesConfig
from rlhf_demo.theory.optimal import TheoryInputError

CONFIGS = [DecodingConfig, EvalConfig, EstimatorLabConfig, CandidatesConfig, SynthConfig]
ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# The pages the README's commands moved to (issue 25): their commands must keep working too. Not
# docs/experiments.md (it quotes removed flags, at the commit where they ran) nor docs/api-training.md
# (``train --algo`` there names a flag, it is no command).
DOCS_WITH_COMMANDS = [ROOT / "docs" / name for name in ("measurements.md", "classroom.md", "data.md", "scaling.md", "architecture.md")]

# Every flag the two commands had before their flags were built from the metadata (their --help then).
GENERATE_FLAGS = {
    "--prompt",
    "--model",
    "--temperature",
    "--top-k",
    "--top-p",
    "--min-p",
    "--repetition-penalty",
    "--no-repeat-ngram-size",
    "--num-beams",
    "--max-new-tokens",
    "--min-new-tokens",
    "--num-return-sequences",
    "--seed",
    "--greedy",
    "--word-bias",
    "--chat",
    "--top",
    "--json",
}
PREFERENCES_FLAGS = {
    "--out",
    "--prompts",
    "--prompt-file",
    "--samples",
    "--cuts",
    "--response-tokens",
    "--temperature",
    "--reward",
    "--model",
    "--seed",
    "--overwrite",
    "--quiet",
}


def _sub(command: str):
    parser = build_parser()
    return next(a for a in parser._actions if a.dest == "command").choices[command]


def _flags(command: str) -> set[str]:
    return {s for a in _sub(command)._actions for s in a.option_strings if s.startswith("--") and s != "--help"}


def _parse(*argv):
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_knob_has_help_a_kind_and_valid_defaults_and_presets(cls):
    assert issubclass(cls, KnobConfig) and len(cls.knobs()) == len(dataclasses.fields(cls))
    for f in cls.knobs():
        assert len(f.metadata["help"]) > 15 and f.metadata["kind"], f.name
    for name in cls.PRESETS:
        cls.preset(name).validate()


def test_generate_and_preferences_keep_every_flag_and_build_the_rest_from_the_knobs():
    gen, pref = _flags("generate"), _flags("preferences")
    assert GENERATE_FLAGS <= gen and PREFERENCES_FLAGS <= pref
    from rlhf_demo.cli.flags import flag_of

    knob_flags = {flag_of(f) for f in DecodingConfig.knobs() if f.metadata["cli"]}
    assert knob_flags <= gen and gen - knob_flags - {"--no-chat"} == {"--prompt", "--model", "--greedy", "--top", "--json"}
    synth_flags = {flag_of(f) for f in SynthConfig.knobs() if f.metadata["cli"]}
    assert synth_flags <= pref and pref - synth_flags == {"--out", "--prompt-file", "--model", "--overwrite", "--quiet"}
    # the help shown is the knob's own
    helps = {a.dest: a.help for a in _sub("generate")._actions}
    assert DecodingConfig.help("top_p") in helps["top_p"] and "(default 50)" in helps["top_k"]


def _readme_commands(pages=(README,)) -> list[list[str]]:
    """``python -m rlhf_demo ...`` commands of the README (or ``pages``): code-block lines and one-line inline code."""
    text = "\n".join(page.read_text(encoding="utf-8") for page in pages)
    found = re.findall(r"^\.venv/bin/python -m rlhf_demo (.+)$", text, flags=re.M)
    found += re.findall(r"`python -m rlhf_demo ([^`\n]+)`", text)
    commands = [shlex.split(line, comments=True) for line in found]
    return [c for c in commands if c and c[0].islower()]  # not the placeholder "COMMAND --help"


def test_the_readmes_commands_parse():
    commands = _readme_commands()
    assert {c[0] for c in commands} >= {"generate", "train", "preferences", "kl", "runs"}
    for argv in commands:
        _parse(*argv)  # argparse exits (SystemExit) on an unknown or malformed flag


def test_the_docs_pages_commands_parse():
    commands = _readme_commands(DOCS_WITH_COMMANDS)
    assert {c[0] for c in commands} >= {"train", "preferences", "runs"}  # GRPO's, the shipped data's, the run list
    assert any("grpo" in c for c in commands)
    for argv in commands:
        _parse(*argv)


def test_the_readmes_generate_and_preferences_commands_mean_what_they_say():
    from rlhf_demo.cli.generate import config_from_args as decoding_from_args

    args = _parse("generate", "--prompt", "The movie was", "--max-new-tokens", "8", "--top-k", "5", "--seed", "0", "--json")
    assert args.json and args.prompt == "The movie was"
    cfg = decoding_from_args(args).validate()
    assert cfg == DecodingConfig(max_new_tokens=8, top_k=5, seed=0).validate()
    from rlhf_demo.cli.flags import inputs_from_args

    args = _parse("preferences", "--out", "prefs.jsonl", "--prompts", "8", "--samples", "4")
    cfg = SynthConfig.from_inputs(None, inputs_from_args(SynthConfig, args)).validate()
    assert (args.out, cfg.n_prompts, cfg.samples, cfg.cuts_per_prompt) == ("prefs.jsonl", 8, 4, 3)


@pytest.mark.parametrize(
    "argv, want",
    [
        ([], {}),
        (["--greedy"], {"strategy": "greedy"}),
        (["--num-beams", "3"], {"strategy": "beam", "num_beams": 3}),
        (["--num-beams", "1"], {"num_beams": 1}),
        (["--strategy", "beam"], {"strategy": "beam"}),
        (["--num-return-sequences", "2", "--chat"], {"num_samples": 2, "chat_template": True}),
        (["--word-bias", "great:5, terrible:-10"], {"word_bias": {"great": 5.0, "terrible": -10.0}}),
        (["--temperature", "0"], {"temperature": 0.0}),
    ],
)
def test_generate_flags_to_config(argv, want):
    from rlhf_demo.cli.generate import config_from_args as decoding_from_args

    cfg = decoding_from_args(_parse("generate", "--prompt", "x", *argv)).validate()
    assert cfg == DecodingConfig(**want).validate()


def test_generate_refuses_greedy_with_another_strategy():
    from rlhf_demo.cli.generate import config_from_args as decoding_from_args

    with pytest.raises(ValueError, match="--greedy contradicts --strategy beam"):
        decoding_from_args(_parse("generate", "--prompt", "x", "--greedy", "--strategy", "beam"))


def test_the_playground_and_the_cli_give_the_same_decoding_config():
    from rlhf_demo.cli.generate import config_from_args as decoding_from_args
    from rlhf_demo.ui.playground import NAMES, START, config_from_widgets

    widgets = {n: getattr(START, n) for n in NAMES}  # what the Playground opens with
    widgets.update(top_k=7.0, num_samples=3.0, seed=11.0, word_bias="great: 2", chat_template=True)  # gr.Number/Slider: floats
    argv = ["--temperature", "0.8", "--top-k", "7", "--top-p", "0.95", "--max-new-tokens", "20", "--num-return-sequences", "3"]
    argv += ["--seed", "11", "--word-bias", "great: 2", "--chat"]
    ui = config_from_widgets(widgets).validate()
    cli = decoding_from_args(_parse("generate", "--prompt", "x", *argv)).validate()
    assert ui == cli and ui.word_bias == {"great": 2.0} and ui.top_k == 7 and isinstance(ui.top_k, int)
    with pytest.raises(DecodingError, match="seed is empty"):
        config_from_widgets({**widgets, "seed": None})


def test_playground_widgets_are_built_from_the_metadata():
    import gradio as gr

    from rlhf_demo.ui.playground import NAMES, knob_widget

    assert NAMES == [
        "strategy",
        "temperature",
        "top_k",
        "top_p",
        "min_p",
        "repetition_penalty",
        "no_repeat_ngram_size",
        "num_beams",
        "max_new_tokens",
        "min_new_tokens",
        "num_samples",
        "seed",
        "word_bias",
        "chat_template",
        "reward",
    ]  # the /generate and /step API parameters, in order
    start = DecodingConfig.preset("playground")
    with gr.Blocks():
        widgets = {n: knob_widget(n) for n in NAMES}
    for name, w in widgets.items():
        meta = DecodingConfig.knob(name).metadata
        assert w.label == meta["label"] and w.info == meta["help"], name
        if meta["slider"]:
            lo, hi, step = meta["slider"]
            assert (w.minimum, w.maximum, w.step, w.value) == (lo, hi, step, getattr(start, name)), name
            assert meta["lo"] <= lo and (meta["hi"] is None or hi <= meta["hi"]), name  # the slider stays inside the valid range
    assert (widgets["temperature"].value, widgets["top_k"].value, widgets["max_new_tokens"].value) == (0.8, 40, 20)
    assert widgets["top_k"].label == "Top-k" and widgets["strategy"].choices == [(s, s) for s in ("sample", "greedy", "beam", "best-of-n")]
    assert widgets["word_bias"].value == "" and widgets["chat_template"].value is False


@pytest.mark.parametrize(
    "config, error, message",
    [
        (DecodingConfig(top_k=2.5), DecodingError, "top_k must be a whole number"),
        (DecodingConfig(seed=-5), DecodingError, "seed must be between 0 and 4294967295"),
        (DecodingConfig(word_bias="great"), DecodingError, "WORD:BIAS"),
        (EvalConfig(n_prompts=0), ValueError, "n_prompts must be between 1 and 1024"),
        (EvalConfig(n_prompts=512, samples_per_prompt=4), ValueError, "limited to 1024 samples"),
        (EstimatorLabConfig(n_samples=0), KLInputError, "Number of samples N must be between 1 and 64"),
        (EstimatorLabConfig(policy_temperature=0.0), KLInputError, "policy temperature must be a positive number"),
        (CandidatesConfig(k=1), TheoryInputError, "Number of candidates K must be between 2 and 32"),
        (CandidatesConfig(reward=""), TheoryInputError, "Reward is empty"),
        (SynthConfig(samples=1), ValueError, "--samples must be between 2 and 32"),
        (SynthConfig(n_prompts=-1), ValueError, "--prompts must be between 0 and 5000"),
        (SynthConfig(query_tokens=(8, 2)), ValueError, "query_tokens is the range 8:2"),
    ],
)
def test_nonsense_is_one_clear_message_in_the_configs_own_words(config, error, message):
    with pytest.raises(error) as err:
        config.validate()
    assert message in str(err.value)


def test_a_bad_cli_value_names_the_flag(capsys):
    from rlhf_demo.cli.main import main

    assert main(["preferences", "--out", "/tmp/never-written.jsonl", "--samples", "1"]) == 2
    assert "error: --samples must be between 2 and 32" in capsys.readouterr().err


OWN = {"steps", "batch_size", "response_tokens", "beta", "cliprange", "eval_every", "loss_type"}
"""Knobs whose range, label or group is each trainer's own (PPO's "Updates", a batch of pairs or of completions)."""


def test_a_knob_two_trainers_share_is_declared_the_same_in_both():
    from rlhf_demo.algorithms import ALGORITHMS

    seen: dict[str, tuple[str, tuple]] = {}
    shared = set()
    for alg in ALGORITHMS.values():
        for f in alg.config.knobs():
            if f.name in OWN:
                continue
            m = f.metadata
            group = "" if f.name == "query_tokens" else m["group"]  # a sampler's or a rollout's setting
            decl = (m["kind"], m["label"], group, m["lo"], m["hi"], m["choices"], m["ui"], m["cli"], m["flag"])
            if f.name in seen:
                shared.add(f.name)
                assert decl == seen[f.name][1], f"{f.name}: {alg.name} declares it otherwise than {seen[f.name][0]}"
            else:
                seen[f.name] = (alg.name, decl)
    assert {"prompts", "preferences", "query_tokens", "epochs", "max_length", "kl_stop", "lora_r", "report_to"} <= shared
