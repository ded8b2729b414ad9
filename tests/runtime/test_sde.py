"""The numpy IR-SDE sampler against states recorded from DA-CLIP's own ``IRSDE`` (tests/data/irsde_ref.npz,
made by tests/data/make_irsde_ref.py from DA-CLIP commit c2cc141): schedule arrays, and whole 100- and
20-step posterior samples replayed with DA-CLIP's draws and the same stand-in noise prediction."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmfir.runtime.errors import ConfigError, UsageError
from mmfir.runtime.sde import IRSDE, SDESettings

REF = np.load(Path(__file__).resolve().parents[1] / "data" / "irsde_ref.npz")


def stand_in(mu: np.ndarray):
    """The reference's stand-in for the U-Net (see make_irsde_ref.py), in numpy."""
    def predict(x: np.ndarray, t: float) -> np.ndarray:
        return 0.5 * np.tanh(3 * (x - mu)) + np.float32(0.001 * t) * np.cos(7 * mu)
    return predict


def replay(draws: np.ndarray):
    it = iter(draws)
    return lambda shape: next(it)


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("steps", [100, 20])
def test_schedule_matches_daclip(steps):
    sde = IRSDE(SDESettings(), steps)
    for name in ("thetas", "sigmas", "thetas_cumsum", "sigma_bars"):
        np.testing.assert_allclose(getattr(sde, name), REF[f"s{steps}_{name}"], rtol=1e-4, atol=1e-7, err_msg=name)
    assert sde.dt == pytest.approx(float(REF[f"s{steps}_dt"]), rel=1e-6)
    assert sde.network_time(steps) == 100.0


@pytest.mark.parametrize("steps", [100, 20])
def test_sample_replays_daclip_states(steps):
    mu = REF["mu"]
    draws = REF[f"s{steps}_draws"]
    assert len(draws) == steps + 1  # the initial state, then one per step
    seen = []
    out = IRSDE(SDESettings(), steps).sample(mu, stand_in(mu), noise=replay(draws), on_step=lambda t, x: seen.append(t))
    assert seen == list(range(steps, 0, -1))
    assert rel_l2(out, REF[f"s{steps}_final"]) < 1e-3


def test_seed_repeats_and_differs():
    mu = REF["mu"]
    sde = IRSDE(SDESettings(), 10)
    a, b = (sde.sample(mu, stand_in(mu), seed=1) for _ in range(2))
    c = sde.sample(mu, stand_in(mu), seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_bad_settings_and_noise_are_named():
    with pytest.raises(ConfigError, match="schedule"):
        SDESettings(schedule="sigmoid")
    with pytest.raises(ConfigError, match="--steps"):
        IRSDE(SDESettings(T=100), 101)
    with pytest.raises(UsageError, match="shape"):
        IRSDE(SDESettings(), 5).sample(REF["mu"], stand_in(REF["mu"]), noise=lambda shape: np.zeros(3))
