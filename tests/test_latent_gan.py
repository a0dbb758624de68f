"""Latent GAN (a refiner of corpus-bank codes): config and checkpoint round trip, the bounded move,
seeded sampling through the debug service's bank, training steps, resumable state, and (when the
shipped checkpoint exists) that it loads strictly and its samples decode closer to the corpus than
the Gaussian prior's."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from musicgen_app.errors import CheckpointError, RequestError
from musicgen_app.models.checkpoints import load_checkpoint, read_metadata, save_checkpoint
from musicgen_app.models.code_bank import CodeBank
from musicgen_app.models.latent_gan import LatentCritic, LatentGAN, LatentGANConfig
from musicgen_app.service.melody_service import MelodyService
from musicgen_app.training import train_gan as tg

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "checkpoints" / "gan.safetensors"
BANK = ROOT / "checkpoints" / "code_bank.safetensors"
VAE = ROOT / "checkpoints" / "vae.safetensors"
torch.set_num_threads(1)


def wild(gan: LatentGAN) -> LatentGAN:
    """As if trained, and then some: the last layer's weights large, so the tanh saturates."""
    torch.nn.init.normal_(gan.net[-1].weight, std=5.0)
    torch.nn.init.normal_(gan.net[-1].bias, std=5.0)
    return gan


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    cfg = LatentGANConfig(z_dim=6, noise_dim=4, hidden=16, layers=2, meter_dim=3, meters=("4/4", "3/4"))
    gan = LatentGAN(cfg)
    gan.set_code_stats(torch.randn(50, 6) * 3 + 1)
    return wild(gan)


@pytest.fixture(scope="module")
def debug():
    svc = MelodyService.debug()
    wild(svc.gan)
    return svc


def test_checkpoint_round_trip(tmp_path, tiny):
    path = save_checkpoint(tmp_path / "gan.safetensors", tiny, data_fingerprint="abc")
    model, meta = load_checkpoint(path, kind="latent_gan")
    assert isinstance(model, LatentGAN) and model.config == tiny.config
    assert meta["config"]["meters"] == ["4/4", "3/4"]  # JSON gives a list; the config makes it a tuple again
    assert model.config.meters == ("4/4", "3/4")
    for (k, a), (_, b) in zip(model.state_dict().items(), tiny.state_dict().items()):
        assert torch.equal(a, b), k
    assert LatentGANConfig.from_dict(tiny.config.to_dict()) == tiny.config


def test_bad_config_is_a_checkpoint_error():
    with pytest.raises(CheckpointError, match="hidden"):
        LatentGANConfig(hidden=0)
    with pytest.raises(CheckpointError, match="max_step"):
        LatentGANConfig(max_step=0)
    with pytest.raises(CheckpointError, match="does not take"):
        LatentGANConfig.from_dict({"nonsense": 1})


def test_untrained_refiner_is_the_identity():
    gan = LatentGAN(LatentGANConfig(z_dim=6, noise_dim=4, hidden=16, layers=1, meter_dim=2))
    gan.set_code_stats(torch.randn(40, 6) * 2 - 3)
    z = torch.randn(9, 6) * 2 - 3
    assert torch.allclose(gan.refine(z, (4, 4), torch.Generator().manual_seed(0)), z, atol=1e-5)


def test_the_move_is_bounded_per_dimension(tiny):
    z = torch.randn(200, 6) * 10  # far from the codes too
    out = tiny.refine(z, "3/4", torch.Generator().manual_seed(1))
    moved = ((out - z) / tiny.code_std).abs()
    assert moved.max() <= tiny.config.max_step + 1e-4
    assert moved.max() > tiny.config.max_step / 2  # the wild weights do move them


def test_refine_is_seeded_and_conditioned_on_the_meter(tiny):
    z = torch.randn(5, 6)
    a = tiny.refine(z, (4, 4), torch.Generator().manual_seed(3))
    torch.manual_seed(99)  # the global RNG plays no part
    assert torch.equal(tiny.refine(z, (4, 4), torch.Generator().manual_seed(3)), a)
    assert not torch.equal(tiny.refine(z, (4, 4), torch.Generator().manual_seed(4)), a)
    assert not torch.equal(tiny.refine(z, (3, 4), torch.Generator().manual_seed(3)), a)
    with pytest.raises(RequestError, match=r"\(n, 6\)"):
        tiny.refine(torch.randn(5, 7), (4, 4), torch.Generator())


def test_unknown_meter_names_the_known_ones(tiny):
    with pytest.raises(RequestError, match="4/4, 3/4"):
        tiny.sample(2, torch.Generator().manual_seed(0), (6, 8))


def test_sample_codes_from_the_debug_bank_are_seeded(debug):
    gan, vae, bank = debug.gan, debug.vae, debug.bank

    def draw(seed, ts=(4, 4), b=bank):
        return gan.sample_codes(vae, b, 5, torch.Generator().manual_seed(seed), ts)

    a = draw(3)
    assert a.shape == (5, vae.config.z_dim) and torch.equal(a, draw(3)) and not torch.equal(a, draw(4))
    torch.manual_seed(99)
    assert torch.equal(draw(3), a)
    assert not torch.equal(draw(3, (3, 4)), a)
    # refined: different from the sources the same seed draws, and within max_step of them
    src = gan.source_codes(vae, bank, 5, torch.Generator().manual_seed(3), (4, 4))
    assert not torch.allclose(src, a)
    # without a bank: refined draws of the fitted Gaussian, as sample() makes them
    none = draw(3, b=None)
    assert none.shape == a.shape and torch.equal(none, gan.sample(5, torch.Generator().manual_seed(3), (4, 4)))
    with pytest.raises(RequestError, match="at least one"):
        gan.sample_codes(vae, bank, 0, torch.Generator(), (4, 4))


def test_sources_follow_the_meters_asked(debug):
    gan, vae, bank = debug.gan, debug.vae, debug.bank
    plain = CodeBank(dataclasses.replace(bank.config, mix=0.0, noise=0.0))  # sources are bank windows' codes
    plain.load_state_dict(bank.state_dict())
    mu = tg.encode_bank(vae, bank)
    sources = tg.Sources(gan, plain, mu)
    meters = torch.tensor([0, 1, 2, 3] * 5)
    got = gan.unstandardise(sources(meters, torch.Generator().manual_seed(0)))
    for z, k in zip(got, meters.tolist()):
        rows = torch.nonzero(bank.meter == bank.config.meters.index(gan.config.meters[k])).squeeze(1)
        assert torch.isclose(mu[rows], z, atol=1e-4).all(1).any()


def test_training_steps_change_weights_and_raise_the_critic_gap(tiny):
    critic = LatentCritic(tiny.config)
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(64, 6, generator=gen) * 0.3 + 2  # standardised codes far from the sources
    source = torch.randn(64, 6, generator=gen)
    meters = torch.zeros(64, dtype=torch.long)
    opt_c = torch.optim.Adam(critic.parameters(), lr=1e-3)
    opt_g = torch.optim.Adam(tiny.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in tiny.parameters()]
    first = tg.critic_step(tiny, critic, opt_c, real, source, meters, gen, gp_weight=1.0)
    for _ in range(20):
        last = tg.critic_step(tiny, critic, opt_c, real, source, meters, gen, gp_weight=1.0)
    assert last["wasserstein"] > first["wasserstein"]  # the critic learns to tell them apart
    out = tg.generator_step(tiny, critic, opt_g, source, meters, gen, step_penalty=0.1)
    assert out["step_norm"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, tiny.parameters()))


def test_step_penalty_keeps_the_move_small():
    """With only the penalty (a critic that scores every code alike), training shrinks the move."""
    torch.manual_seed(0)
    gan = LatentGAN(LatentGANConfig(z_dim=6, noise_dim=4, hidden=16, layers=1, meter_dim=2))
    torch.nn.init.normal_(gan.net[-1].weight, std=0.3)  # moving, but not saturated (where tanh has no slope)
    critic = LatentCritic(gan.config)
    torch.nn.init.zeros_(critic.net[-1].weight)
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(gan.parameters(), lr=1e-2)
    meters = torch.zeros(128, dtype=torch.long)
    first = tg.generator_step(gan, critic, opt, torch.randn(128, 6, generator=gen), meters, gen, 1.0)["step_norm"]
    for _ in range(100):
        last = tg.generator_step(gan, critic, opt, torch.randn(128, 6, generator=gen), meters, gen, 1.0)["step_norm"]
    assert last < first / 4


def test_resumable_state_round_trip(tmp_path, tiny):
    critic = LatentCritic(tiny.config)
    opt = torch.optim.Adam(critic.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    tg.critic_step(tiny, critic, opt, torch.randn(8, 6), torch.randn(8, 6), torch.zeros(8, dtype=torch.long), gen, 1.0)
    tg.save_state(tmp_path / "s.safetensors", {"gan": tiny, "critic": critic, "opt_c": opt}, gen, {"step": 7})
    expect = torch.randn(3, generator=gen)
    gan2, critic2 = LatentGAN(tiny.config), LatentCritic(tiny.config)
    opt2 = torch.optim.Adam(critic2.parameters(), lr=1e-3)
    gen2 = torch.Generator()
    info = tg.load_state(tmp_path / "s.safetensors", {"gan": gan2, "critic": critic2, "opt_c": opt2}, gen2)
    assert info == {"step": 7} and torch.equal(torch.randn(3, generator=gen2), expect)
    assert torch.equal(gan2.code_mean, tiny.code_mean)
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_one_nn_two_sample_test():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(300, 4, generator=g), torch.randn(300, 4, generator=g)
    assert abs(tg.one_nn_accuracy(a, b) - 0.5) < 0.08
    assert tg.one_nn_accuracy(a, b + 5) == 1.0


@pytest.fixture(scope="module")
def shipped():
    if not (SHIPPED.exists() and BANK.exists()):
        pytest.skip("no shipped latent GAN or corpus bank checkpoint")
    vae, _ = load_checkpoint(VAE, kind="vae")
    gan, meta = load_checkpoint(SHIPPED, kind="latent_gan")  # strict: every tensor fits the config
    bank, _ = load_checkpoint(BANK, kind="code_bank")
    return vae, gan, meta, bank


def test_shipped_gan_is_self_describing(shipped):
    vae, gan, meta, bank = shipped
    assert meta["vae_weights_sha256"] == read_metadata(VAE)["weights_sha256"]
    assert gan.config.z_dim == vae.config.z_dim and "4/4" in gan.config.meters
    assert set(gan.config.meters) <= set(bank.config.meters)
    assert {"valid", "test"} <= set(meta["metrics"])
    assert meta["metrics"]["test"]["GAN"]["c2st"] <= 0.72


def test_shipped_refinement_is_bounded_and_moves(shipped):
    vae, gan, _, bank = shipped
    src = gan.source_codes(vae, bank, 64, torch.Generator().manual_seed(0), (4, 4))
    out = gan.refine(src, (4, 4), torch.Generator().manual_seed(1))
    moved = ((out - src) / gan.code_std).abs()
    assert moved.max() <= gan.config.max_step + 1e-4
    assert moved.norm(dim=1).mean() > 0.1  # it does refine


def test_shipped_gan_samples_are_closer_to_the_corpus_than_the_gaussian_prior(shipped):
    """Notes per bar of 96 decoded 4/4 samples against held-out 4/4 test windows.

    Floor: the shipped Gaussian prior, measured here on the same seed (its samples average about
    6.2 notes per bar against 4.7 held out). A refiner with random weights moves every code by up
    to max_step at random and loses much of what the bank's codes have."""
    from musicgen_app.training import corpus
    from musicgen_app.training.stats import melody_stats

    vae, gan, _, bank = shipped
    four = [m for m in corpus.load_corpus().split("test") if m.time_signature == (4, 4)]
    held_out = np.mean([melody_stats(m)["notes_per_bar"] for m in tg.window_melodies(four, vae.config.window)])

    def gap(sample_z):
        gen = torch.Generator().manual_seed(0)
        melodies = tg.decode_codes(vae, sample_z(96, gen), (4, 4), 1.0, gen)
        return abs(np.mean([s["notes_per_bar"] for s in map(melody_stats, melodies) if s]) - held_out)

    gan_gap = gap(lambda n, g: gan.sample_codes(vae, bank, n, g, (4, 4)))
    gauss_gap = gap(vae.sample_prior)
    assert gan_gap < gauss_gap / 3, (gan_gap, gauss_gap)
