"""Checkpoint files: self-describing, strict, and every kind of damage gives a CheckpointError."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from musicgen_app.errors import CheckpointError
from musicgen_app.models.checkpoints import load_checkpoint, read_metadata, save_checkpoint
from musicgen_app.models.lstm import LSTMConfig, MelodyLSTM
from musicgen_app.models.vae import MelodyVAE, VAEConfig


@pytest.fixture
def small_lstm():
    torch.manual_seed(0)
    return MelodyLSTM(LSTMConfig(embed_dim=8, pos_dim=4, hidden=16, layers=2))


@pytest.fixture
def saved(tmp_path, small_lstm):
    return save_checkpoint(tmp_path / "lstm.safetensors", small_lstm, data_fingerprint="abc", train_steps=7,
                           metrics={"valid": {"loss": 1.5}})


def test_round_trip_rebuilds_model_from_file_alone(saved, small_lstm):
    model, meta = load_checkpoint(saved, kind="lstm")
    assert meta["kind"] == "lstm" and meta["data_fingerprint"] == "abc" and meta["train_steps"] == "7"
    assert meta["config"]["hidden"] == 16 and meta["metrics"]["valid"]["loss"] == 1.5
    for (k, a), (_, b) in zip(model.state_dict().items(), small_lstm.state_dict().items()):
        assert torch.equal(a, b), k
    assert not model.training


def test_vae_round_trip(tmp_path):
    vae = MelodyVAE(VAEConfig(embed_dim=8, pos_dim=4, enc_hidden=8, dec_hidden=8, dec_layers=1, z_dim=4))
    model, meta = load_checkpoint(save_checkpoint(tmp_path / "v.safetensors", vae), kind="vae")
    assert isinstance(model, MelodyVAE) and meta["config"]["z_dim"] == 4


def test_wrong_kind(saved):
    with pytest.raises(CheckpointError, match="holds a 'lstm' model"):
        load_checkpoint(saved, kind="vae")


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_truncated_file(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated|could not be read"):
        load_checkpoint(saved)


def test_garbage_file(tmp_path):
    p = tmp_path / "x.safetensors"
    p.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError):
        load_checkpoint(p)


def test_tampered_weights_are_caught(saved):
    tensors = load_file(str(saved))
    meta = read_metadata(saved)
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 0.01
    save_file(tensors, str(saved), metadata=meta)
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(saved)


def test_config_mismatch_is_strict(saved):
    tensors = load_file(str(saved))
    meta = dict(read_metadata(saved))
    cfg = json.loads(meta["config"])
    cfg["hidden"] = 32  # the weights are for 16
    meta["config"] = json.dumps(cfg)
    save_file(tensors, str(saved), metadata=meta)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(saved)


def test_unknown_config_field(saved):
    tensors = load_file(str(saved))
    meta = dict(read_metadata(saved))
    meta["config"] = json.dumps(dict(json.loads(meta["config"]), wings=2))
    save_file(tensors, str(saved), metadata=meta)
    with pytest.raises(CheckpointError, match="does not fit this code"):
        load_checkpoint(saved)


def test_other_encoding_version(saved):
    tensors = load_file(str(saved))
    meta = dict(read_metadata(saved), encoding="step130-v0")
    save_file(tensors, str(saved), metadata=meta)
    with pytest.raises(CheckpointError, match="retrain"):
        load_checkpoint(saved)


def test_foreign_safetensors_file(tmp_path):
    p = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(p))
    with pytest.raises(CheckpointError, match="lacks musicgen metadata"):
        load_checkpoint(p)
