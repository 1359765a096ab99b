"""Every public endpoint of the whole app names its parameters (what ``gradio_client`` shows and
takes as keywords): ``temperature`` and ``top_k``, never ``param_3``. Gradio takes the names from the
handler's signature, so a handler with ``*args`` would fail here. No browser; ``view_api`` loads
no model, and the keyword calls run on the tiny model."""

from __future__ import annotations

import re

import pytest

PLAYGROUND_KNOBS = [
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
]


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def api(client) -> dict:
    return client.view_api(return_format="dict", print_info=False)


def _names(api: dict, endpoint: str) -> list[str]:
    return [p["parameter_name"] for p in api["named_endpoints"][endpoint]["parameters"]]


def test_playground_endpoints_are_named_after_the_knobs(api):
    assert _names(api, "/generate") == ["prompt", "model", *PLAYGROUND_KNOBS]
    assert _names(api, "/step") == ["sequence", "step", *PLAYGROUND_KNOBS]
    assert _names(api, "/branch") == ["sequence", "step", "token_id", "word"]


def test_kl_endpoints_are_named(api):
    assert _names(api, "/kl_tokens") == [
        "policy",
        "reference",
        "policy_temperature",
        "prompt",
        "response_mode",
        "response",
        "max_new_tokens",
        "seed",
        "colour_by",
    ]
    assert _names(api, "/kl_estimator_lab") == [
        "policy",
        "reference",
        "policy_temperature",
        "prompt",
        "n_samples",
        "response_tokens",
        "seed",
    ]


def test_no_public_endpoint_has_an_unnamed_parameter(api):
    unnamed = {
        endpoint: bad
        for kind in ("named_endpoints", "unnamed_endpoints")
        for endpoint, info in api[kind].items()
        if (bad := [p["parameter_name"] for p in info["parameters"] if re.fullmatch(r"param_\d+", p["parameter_name"])])
    }
    assert not unnamed, f"endpoints whose handler takes *args (name its parameters): {unnamed}"


def test_generate_by_keyword_on_the_tiny_model(client, tiny_model_dir):
    kw = dict(prompt="The movie was", model=str(tiny_model_dir), temperature=0.7, top_k=5, max_new_tokens=4, seed=3, api_name="/generate")
    out = client.predict(**kw)
    assert "Generated 4 tokens" in out[11]
    assert "TemperatureLogitsWarper(temperature=0.7)" in out[8] and "TopKLogitsWarper(top_k=5)" in out[8]  # each knob where named
    assert client.predict(**kw)[0] == out[0]  # the same seed gives the same tokens and probabilities
    caption = client.predict(sequence=1, step=2, top_k=1, max_new_tokens=4, api_name="/step")[1]
    assert "**Step 2**" in caption and "Kept now: 1 of 49152 tokens" in caption


def test_kl_tokens_by_keyword_on_the_tiny_model(client, tiny_model_dir):
    tiny = str(tiny_model_dir)
    out = client.predict(
        policy=tiny,
        reference=tiny,
        policy_temperature=0.5,
        prompt="The movie was",
        response_mode="type it in",
        response=" great fun",
        api_name="/kl_tokens",
    )
    assert out[0].startswith("**Done") and "policy temperature 0.5" in out[2]


def test_a_wrong_typed_knob_is_named_in_the_error(client, tiny_model_dir):
    """Text sent to a slider through the API gets a clear line naming the field, not Gradio's generic error."""
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Temperature: 'hot' is not a valid value here"):
        client.predict(
            prompt="The movie was",
            model=str(tiny_model_dir),
            strategy="sample",
            temperature="hot",
            top_k=40,
            top_p=0.95,
            min_p=0.0,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            num_beams=4,
            max_new_tokens=3,
            min_new_tokens=0,
            num_samples=1,
            seed=0,
            word_bias="",
            chat_template=False,
            api_name="/generate",
        )
