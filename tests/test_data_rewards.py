import pytest
import torch

from rlhf_demo.data.prompts import LengthSampler, PromptError, builtin_prompts, load_prompts, parse_prompts
from rlhf_demo.rewards.functions import RewardError, make_reward


def test_builtin_split_is_disjoint_and_large():
    train, held = builtin_prompts("train"), builtin_prompts("heldout")
    assert len(builtin_prompts("all")) >= 200
    assert len(held) >= 32 and not set(train) & set(held)
    assert len(train) + len(held) == len(builtin_prompts("all"))


@pytest.mark.parametrize(
    "data,name,expected",
    [
        (b"one\n\ntwo\n", "p.txt", ["one", "two"]),
        (b"id,prompt\n1,hello there\n2,second\n", "p.csv", ["hello there", "second"]),
        (b'{"prompt": "a"}\n{"text": "b"}\n', "p.jsonl", ["a", "b"]),
    ],
)
def test_parse_prompts_formats(data, name, expected):
    assert parse_prompts(data, name) == expected


@pytest.mark.parametrize(
    "data,name,msg",
    [
        (b"", "p.txt", "no prompts"),
        (b"\n\n", "p.txt", "no prompts"),
        (b"\xff\xfe\xfa", "p.txt", "not UTF-8"),
        (b"{bad json\n", "p.jsonl", "line 1"),
        (b"x" * 3_000_000, "p.txt", "limit"),
    ],
)
def test_parse_prompts_errors(data, name, msg):
    with pytest.raises(PromptError, match=msg):
        parse_prompts(data, name)


def test_missing_file_and_offline_dataset_are_clear():
    with pytest.raises(PromptError, match="does not exist"):
        load_prompts("/no/such/file.txt")
    with pytest.raises(PromptError, match="unreachable"):
        load_prompts("hf:stanfordnlp/imdb")


def test_length_sampler_range():
    import random

    s = LengthSampler(2, 8)
    rng = random.Random(0)
    draws = {s(rng) for _ in range(500)}
    assert draws == set(range(2, 9))
    with pytest.raises(ValueError):
        LengthSampler(5, 2)


def test_vader_sign_and_details():
    pos, neg = make_reward("vader-positive"), make_reward("vader-negative")
    texts = ["This movie was wonderful and I loved it", "This movie was awful, I hated it"]
    a, b = pos(texts), neg(texts)
    assert a[0] > 0.5 and a[1] < -0.5 and b == [-x for x in a]
    assert set(pos.last_details[0]) >= {"compound", "pos", "neg"}


def test_toy_rewards():
    assert make_reward("length")(["a b c d"]) == [0.4]
    assert make_reward("keyword:great")(["Great, great fun. greatly"]) == [2.0]


@pytest.mark.parametrize(
    "spec,msg",
    [("nonsense", "unknown reward"), ("hf:x", "hf:MODEL:LABEL"), ("hf:no-such/model:POS", "unreachable"), ("keyword:", "needs a word")],
)
def test_bad_reward_specs(spec, msg):
    with pytest.raises(RewardError, match=msg):
        make_reward(spec)


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory, tiny_model_dir):
    """A tiny local text-classification model whose labels are in the *opposite* order to the usual."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(1)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_labels=2,
        id2label={0: "POSITIVE", 1: "NEGATIVE"},
        label2id={"POSITIVE": 0, "NEGATIVE": 1},
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForSequenceClassification(cfg)
    out = tmp_path_factory.mktemp("clf")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out, model, tok


def test_pipeline_reward_picks_label_by_name(tiny_classifier):
    path, model, tok = tiny_classifier
    texts = ["I loved this film", "terrible"]
    logit = make_reward(f"hf:{path}:NEGATIVE")
    prob = make_reward(f"hf:{path}:NEGATIVE:prob")
    got_logit, got_prob = logit(texts), prob(texts)
    for i, t in enumerate(texts):
        with torch.no_grad():
            z = model(**tok(t, return_tensors="pt")).logits[0]
        assert got_logit[i] == pytest.approx(float(z[1]), abs=1e-4)  # NEGATIVE is index 1 here
        assert got_prob[i] == pytest.approx(float(z.softmax(-1)[1]), abs=1e-4)
    assert logit.last_details and {d["label"] for d in logit.last_details[0]} == {"POSITIVE", "NEGATIVE"}
    with pytest.raises(RewardError, match="no label 'POS'"):
        make_reward(f"hf:{path}:POS")
