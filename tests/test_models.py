import json

import pytest
import torch

from rlhf_demo.models import loading as models
from rlhf_demo.models.loading import ModelLoadError, load_model


def test_unknown_local_folder_is_clear():
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model("./no/such/model")


def test_offline_hub_id_is_clear():
    with pytest.raises(ModelLoadError, match="Hub"):
        load_model("someone/no-such-model-xyz")


def test_folder_without_config_is_clear(tmp_path):
    with pytest.raises(ModelLoadError, match="config.json"):
        load_model(str(tmp_path))


def test_tiny_model_loads_on_cpu_fp32(tiny_bundle):
    assert tiny_bundle.device.type == "cpu" and tiny_bundle.dtype == torch.float32
    assert not any(p.is_cuda for p in tiny_bundle.model.parameters())


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "c"))
    assert models.cache_dir() == tmp_path / "c"


@pytest.mark.integration
def test_default_model_is_converted_smollm2(default_bundle):
    cfg = default_bundle.model.config
    assert cfg.vocab_size == 49152 and cfg.num_hidden_layers == 30
    d = models.default_model_dir()
    assert (d / "model.safetensors").exists() and json.loads((d / "config.json").read_text())
    assert default_bundle.tokenizer.eos_token == "<|im_end|>"
    n = sum(p.numel() for p in default_bundle.model.parameters())
    assert 130e6 < n < 140e6


@pytest.mark.integration
def test_registry_shares_one_copy(default_bundle):
    assert models.REGISTRY.get("default") is default_bundle
    assert not any(p.requires_grad for p in default_bundle.model.parameters())
