"""The realism critic Generate's corpus bank chooses its melodies by (models/realism.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from musicgen_app import tokens as tk
from musicgen_app.errors import CheckpointError
from musicgen_app.melody import Key, Melody, Note
from musicgen_app.models import realism
from musicgen_app.models.checkpoints import save_checkpoint
from musicgen_app.models.realism import (
    FEATURE_NAMES,
    RealismCritic,
    RealismCriticConfig,
    critic_for,
    load_critic,
    realism_features,
    realism_features_many,
)
from musicgen_app.paths import CHECKPOINTS
from musicgen_app.service import MelodyService, SampleRequest

SHIPPED = CHECKPOINTS / realism.CRITIC_FILE
needs_shipped = pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped realism critic")


C_MAJOR = Key(0, "major")


def melody(pitches, starts=None, dur=2, key=C_MAJOR, bars=4) -> Melody:
    starts = starts if starts is not None else [2 * i for i in range(len(pitches))]
    return Melody(notes=tuple(Note(s, p, dur) for s, p in zip(starts, pitches)), time_signature=(4, 4),
                  total_steps=16 * bars, key=key)


def test_features_describe_the_notes():
    m = melody([60, 62, 64, 65, 66, 60, 62, 64], starts=[0, 2, 4, 6, 8, 16, 18, 20])
    f = dict(zip(FEATURE_NAMES, realism_features(m)))
    assert f["notes_per_bar"] == pytest.approx(2.0)
    assert f["in_scale"] == pytest.approx(7 / 8)  # F# is out of C major
    assert f["interval_6"] == pytest.approx(1 / 7)  # 66 -> 60, a tritone
    assert f["onset_2"] == pytest.approx(2 / 4)  # an off-beat eighth in bars 1 and 2
    assert f["repeated_bars"] == 0.0
    again = melody([60, 62, 60, 62], starts=[0, 4, 16, 20])
    assert dict(zip(FEATURE_NAMES, realism_features(again)))["repeated_bars"] == pytest.approx(1 / 3)


def test_features_of_many_melodies_are_each_ones_and_a_silent_melody_has_some():
    ms = [melody([60, 67, 64]), melody([]), melody([72], key=Key(9, "minor")), melody([55, 57, 59, 60, 62] * 3)]
    many = realism_features_many(ms)
    assert many.shape == (4, len(FEATURE_NAMES)) and np.isfinite(many).all()
    for m, row in zip(ms, many):
        np.testing.assert_array_equal(realism_features(m), row)


def test_choice_keeps_fewest_misses_first_then_the_most_real_looking():
    critic = RealismCritic(RealismCriticConfig(gamma=1000.0))
    with torch.no_grad():
        critic.out.weight.zero_()
        critic.out.weight[0, FEATURE_NAMES.index("in_scale")] = 1.0
    inside, outside = melody([60, 62, 64, 65]), melody([61, 63, 66, 68])
    ms = [outside, inside, outside, inside]
    gen = torch.Generator().manual_seed(0)
    assert critic.choose(ms, 2, gen).tolist() == [1, 3]
    # a melody that misses an asked attribute comes after every one that does not, however real it looks
    assert critic.choose(ms, 2, gen, np.array([0, 1, 0, 0])).tolist() == [0, 3]
    # ... and the first ordering is the strongest
    assert critic.choose(ms, 2, gen, np.array([0, 1, 0, 0]), np.array([0, 0, 1, 1])).tolist() == [0, 3]
    assert critic.choose(ms, 2, gen, np.array([0, 0, 0, 0]), np.array([0, 1, 0, 1])).tolist() == [0, 2]
    assert critic.choose(ms, 4, gen).tolist() == [0, 1, 2, 3]
    # gamma 0: a uniform draw, seeded
    uniform = RealismCritic(RealismCriticConfig(gamma=0.0))
    picks = [tuple(uniform.choose(ms, 2, torch.Generator().manual_seed(s))) for s in range(20)]
    assert len(set(picks)) > 2 and picks[0] == tuple(uniform.choose(ms, 2, torch.Generator().manual_seed(0)))


def test_checkpoint_round_trip_and_a_changed_file_is_refused(tmp_path):
    critic = RealismCritic(RealismCriticConfig(hidden=4, gamma=2.0, oversample=1.5))
    path = save_checkpoint(tmp_path / "c.safetensors", critic, extra={"code_bank_weights_sha256": "abc"})
    again, meta = load_critic(path)
    assert again.config == critic.config and meta["kind"] == "realism_critic"
    for k, v in critic.state_dict().items():
        assert torch.equal(v, again.state_dict()[k])
    assert again.drawn(8) == 12
    with pytest.raises(CheckpointError, match="another corpus bank"):
        _critic_in(tmp_path, path, {"weights_sha256": "other"})
    assert _critic_in(tmp_path, path, {"weights_sha256": "abc"}, (3, 4)) is None  # a meter it was not trained on
    tensors = {k: v.clone() for k, v in critic.state_dict().items()}
    tensors["out.bias"] += 1
    with safe_open(str(path), "pt") as f:
        save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=f.metadata())
    with pytest.raises(CheckpointError, match="sha256"):
        load_critic(tmp_path / "bad.safetensors")


def _critic_in(directory, path, bank_info, ts=(4, 4)):
    (directory / realism.CRITIC_FILE).write_bytes(path.read_bytes())
    realism._loaded.cache_clear()
    try:
        return critic_for(bank_info, ts, directory)
    finally:
        realism._loaded.cache_clear()


def test_the_debug_service_has_no_critic_and_draws_as_before():
    svc = MelodyService.debug()
    assert critic_for(svc.info.get("code_bank"), (4, 4)) is None
    assert len(svc.sample(SampleRequest(count=3, seed=1)).melodies) == 3


@needs_shipped
def test_shipped_critic_fits_the_shipped_bank_and_records_its_training():
    critic, meta = load_critic(SHIPPED)
    svc = MelodyService.from_checkpoints()
    assert meta["code_bank_weights_sha256"] == svc.info["code_bank"]["weights_sha256"]
    assert meta["train_command"].startswith("python -m musicgen_app.training.train_critic")
    assert meta["metrics"]["heldout_accuracy"] > 0.6
    assert critic_for(svc.info["code_bank"], (4, 4)) is not None


@needs_shipped
def test_generate_keeps_the_melodies_the_critic_finds_most_real(monkeypatch):
    """Without the choice, Generate's melodies score as the bank's samples do; with it, clearly higher."""
    critic, _ = load_critic(SHIPPED)
    svc = MelodyService.from_checkpoints()
    chosen = [critic.scores(svc.sample(SampleRequest(count=16, seed=s)).melodies).mean() for s in range(4)]
    monkeypatch.setenv(realism.ENV_PATH, "none")
    plain = [critic.scores(svc.sample(SampleRequest(count=16, seed=s)).melodies).mean() for s in range(4)]
    assert np.mean(chosen) > np.mean(plain) + 0.3, (chosen, plain)
    # 16 bars and a shaped request still come back whole and as asked
    monkeypatch.delenv(realism.ENV_PATH)
    long = svc.sample(SampleRequest(count=4, seed=0, bars=16)).melodies
    assert [m.total_steps for m in long] == [256] * 4
    shaped = svc.sample(SampleRequest(count=8, seed=0, key="D minor", ends_on_tonic=True)).melodies
    assert sum(m.key == Key.parse("D minor") and m.notes[-1].pitch % 12 == 2 for m in shaped) >= 6


def test_the_bank_knows_which_melodies_play_its_tunes_bars_back():
    """CodeBank.copied: the melodies Generate's choice puts after all others
    (service.decoding.bank_melodies), because a critic of realism would favour them."""
    bank = MelodyService.debug().bank
    four = bank.config.meters.index("4/4")
    rows = torch.nonzero(bank.meter == four).squeeze(1)
    first, second = (int(r) for r in rows[torch.argsort(bank.place()[rows])][:2])  # a tune's bars 0-3 and 4-7
    assert bank.tune[first] == bank.tune[second] and (int(bank.bar[first]), int(bank.bar[second])) == (0, 4)
    probe = Melody(notes=(), time_signature=(4, 4))
    tune_bars = [tk.decode(bank.tokens[r].numpy().astype(np.int64), probe) for r in (first, second)]
    whole = tune_bars[0].concat(tune_bars[1])  # bars 0-7 of the tune
    across = whole.slice(32, 96)  # bars 2-5: no window of the bank starts there
    last = across.notes[-1]
    changed = across.replace(notes=across.notes[:-1] + (dataclasses.replace(last, pitch=last.pitch + 1),))
    assert bank.copied([tune_bars[1], across, changed, whole]).tolist() == [True, True, False, True]
