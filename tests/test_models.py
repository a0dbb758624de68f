"""The one-step sampling paths compute exactly what the full-sequence (training) paths compute."""

import pytest
import torch

from musicgen_app.errors import CheckpointError
from musicgen_app.models.lstm import LSTMConfig, MelodyLSTM
from musicgen_app.models.vae import MelodyVAE, VAEConfig, kl_divergence


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("grad", [False, True], ids=["sampling-tables", "plain"])
def test_lstm_step_matches_sequence_forward(layers, grad):
    torch.manual_seed(0)
    m = MelodyLSTM(LSTMConfig(hidden=32, layers=layers)).eval()
    toks = torch.randint(0, 90, (3, 10))
    # 3 metrical columns, a lookback token per lag (90 = none), a repeat flag per lag
    feats = torch.cat([torch.randint(0, 4, (3, 10, 3)), torch.randint(0, 91, (3, 10, 4)),
                       torch.randint(0, 2, (3, 10, 4))], dim=-1)
    assert feats.shape[-1] == m.config.n_features
    with torch.set_grad_enabled(grad):
        state, outs = (torch.randn(layers, 3, 32), torch.randn(layers, 3, 32)), []
        full, _ = m(toks, feats, state)
        for t in range(10):
            logits, state = m.step(toks[:, t], feats[:, t], state)
            outs.append(logits)
    assert torch.allclose(torch.stack(outs, 1), full, atol=1e-5)


def test_lstm_sampling_tables_follow_weight_changes():
    torch.manual_seed(0)
    m = MelodyLSTM(LSTMConfig(hidden=16, layers=2)).eval()
    toks, feats = torch.randint(0, 90, (2,)), torch.zeros(2, m.config.n_features, dtype=torch.long)
    state = (torch.zeros(2, 2, 16), torch.zeros(2, 2, 16))
    with torch.no_grad():
        before, _ = m.step(toks, feats, state)
        m.embed.weight.mul_(2)  # in place, as an optimiser step or load_state_dict changes weights
        after, _ = m.step(toks, feats, state)
    with torch.enable_grad():
        expected, _ = m.step(toks, feats, state)
    assert not torch.allclose(before, after) and torch.allclose(after, expected, atol=1e-5)


@pytest.mark.parametrize("segments", [1, 4])
def test_vae_decode_one_matches_teacher_forced_decoder(segments):
    torch.manual_seed(0)
    v = MelodyVAE(VAEConfig(enc_hidden=16, dec_hidden=24, dec_layers=2, z_dim=8, window=12, segments=segments)).eval()
    prev, feats, z = torch.randint(0, 90, (2, 12)), torch.randint(0, 4, (2, 12, 3)), torch.randn(2, 8)
    with torch.inference_mode():
        full, _ = v.decode_step(prev, feats, z, v.initial_state(z))
        state, outs, zin = v.initial_state(z), [], v.z_inputs(z, 12)
        for t in range(12):
            logits, state = v.decode_one(prev[:, t], feats[:, t], zin[:, t], state)
            outs.append(logits)
    assert torch.allclose(torch.stack(outs, 1), full, atol=1e-5)


def test_vae_segments_give_each_part_of_the_window_its_own_code():
    torch.manual_seed(0)
    v = MelodyVAE(VAEConfig(enc_hidden=16, dec_hidden=24, z_dim=8, window=12, segments=4)).eval()
    zin = v.z_inputs(torch.randn(1, 8), 12)[0, :, 8:]
    assert all(torch.equal(zin[3 * k], zin[3 * k + 2]) for k in range(4))
    assert not torch.equal(zin[0], zin[3]) and not torch.equal(zin[6], zin[9])


def test_vae_window_must_split_into_segments():
    with pytest.raises(CheckpointError, match="multiple of segments"):
        VAEConfig(window=10, segments=4)


def test_kl_of_the_prior_is_zero_and_grows_away_from_it():
    mu, sigma = torch.zeros(2, 4), torch.ones(2, 4)
    assert torch.allclose(kl_divergence(mu, sigma), torch.zeros(2))
    assert (kl_divergence(mu + 1, sigma * 0.5) > 0).all()


def test_vae_prior_is_standard_until_fitted_then_follows_the_codes(tmp_path):
    from musicgen_app.models.checkpoints import load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    v = MelodyVAE(VAEConfig(enc_hidden=8, dec_hidden=8, z_dim=4, window=8, segments=2, segment_dim=4))
    z = v.sample_prior(4000, torch.Generator().manual_seed(1))
    assert z.mean(0).abs().max() < 0.1 and (z.std(0) - 1).abs().max() < 0.1
    codes = torch.randn(5000, 4) * torch.tensor([0.5, 2.0, 1.0, 0.1]) + torch.tensor([3.0, -1.0, 0.0, 2.0])
    v.fit_prior(codes)
    back, _ = load_checkpoint(save_checkpoint(tmp_path / "v.safetensors", v), kind="vae")  # the prior travels
    z = back.sample_prior(4000, torch.Generator().manual_seed(1))
    assert torch.allclose(z.mean(0), torch.tensor([3.0, -1.0, 0.0, 2.0]), atol=0.1)
    assert torch.allclose(z.std(0), torch.tensor([0.5, 2.0, 1.0, 0.1]), rtol=0.1)
