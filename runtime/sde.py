"""IR-SDE sampling in numpy: the loop around a diffusion restorer's noise prediction (DA-CLIP's sampler).

IR-SDE (Luo et al., 2023) is a mean-reverting SDE ``dx = theta_t (mu - x) dt + sigma_t dw`` whose mean
``mu`` is the degraded image: sampling starts at ``mu`` plus Gaussian noise of ``max_sigma`` and walks back
to the clean image in ``steps`` posterior steps. At each step t (``steps`` .. 1) the network predicts the
noise in the state; the clean estimate is ``x0 = (x - mu - sigma_bar_t * noise) * exp(theta_bar_t dt) + mu``
and the next state is the optimal posterior mean between ``x`` and ``x0`` plus ``posterior_std_t`` times a
fresh standard-normal draw.

The schedule is DA-CLIP's (``utils/sde_utils.py``, class ``IRSDE``, commit c2cc141): a cosine schedule of
``steps + 1`` thetas, ``dt`` chosen so that ``exp(-theta_bar_T dt) = eps``; sampling with fewer steps than
the model was trained with recomputes the schedule for ``steps`` and calls the network at ``t * T / steps``
(DA-CLIP's ``sample_T``). Arrays are float32 as in DA-CLIP. The draw order is DA-CLIP's too: the initial
state first, then one draw per step, so a noise source that replays DA-CLIP's draws reproduces its states
(``tests/runtime/test_sde.py`` checks this against states recorded from DA-CLIP's own code).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from .errors import ConfigError, UsageError
from .spec import PIXELS, SAMPLER_STATE, SAMPLER_TIME

NoiseSource = Callable[[tuple[int, ...]], np.ndarray]   # shape -> standard-normal float32 array
PredictNoise = Callable[[np.ndarray, float], np.ndarray]  # (state, network time step) -> predicted noise
SCHEDULES = ("cosine", "linear", "constant")


@dataclass(frozen=True)
class SDESettings:
    """The sampler's settings, stored with the model (DA-CLIP universal-ir: 50, 100, cosine, 0.005)."""

    max_sigma: float = 50.0  # in 0-255 units when >= 1 (as DA-CLIP's options), else in [0, 1] units
    T: int = 100             # time steps the network was trained with
    schedule: str = "cosine"
    eps: float = 0.005       # exp(-theta_bar_T dt): how far the mean has reverted at t = T

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown SDE schedule '{self.schedule}' (known: {', '.join(SCHEDULES)})")
        if self.T < 1 or self.max_sigma <= 0 or not 0 < self.eps < 1:
            raise ConfigError(f"bad SDE settings {asdict(self)}: need T >= 1, max_sigma > 0, 0 < eps < 1")

    @property
    def sigma(self) -> float:
        return self.max_sigma / 255.0 if self.max_sigma >= 1 else self.max_sigma

    def as_dict(self) -> dict:
        return asdict(self)


def _thetas(kind: str, steps: int) -> np.ndarray:
    """``steps + 1`` thetas (index 0 is never sampled), float32 as DA-CLIP computes them."""
    if kind == "constant":
        return np.ones(steps + 1, dtype=np.float32)
    if kind == "linear":
        scale = np.float32(1000 / (steps + 1))
        return np.linspace(scale * np.float32(1e-4), scale * np.float32(0.02), steps + 1, dtype=np.float32)
    n = steps + 2  # cosine: two extra points, truncated at both ends
    x = np.linspace(0, n, n + 1, dtype=np.float32)
    s = np.float32(0.008)
    alphas = np.cos(((x / np.float32(n)) + s) / (1 + s) * np.float32(math.pi * 0.5)).astype(np.float32) ** 2
    alphas = alphas / alphas[0]
    return (1 - alphas[1:-1]).astype(np.float32)


class IRSDE:
    """The schedule for ``steps`` sampling steps and the posterior step; ``sample`` runs the loop."""

    def __init__(self, settings: SDESettings = SDESettings(), steps: int | None = None):
        self.settings = settings
        self.steps = settings.T if steps is None else int(steps)
        if not 1 <= self.steps <= settings.T:
            raise ConfigError(f"--steps must be between 1 and the model's T = {settings.T}, got {self.steps}")
        self.time_scale = settings.T / self.steps
        sigma = np.float32(settings.sigma)
        self.max_sigma = sigma
        self.thetas = _thetas(settings.schedule, self.steps)
        self.sigmas = np.sqrt(sigma ** 2 * 2 * self.thetas).astype(np.float32)
        self.thetas_cumsum = (np.cumsum(self.thetas, dtype=np.float32) - self.thetas[0]).astype(np.float32)
        self.dt = np.float32(-1 / self.thetas_cumsum[-1] * math.log(settings.eps))
        self.sigma_bars = np.sqrt(sigma ** 2 * (1 - np.exp(-2 * self.thetas_cumsum * self.dt))).astype(np.float32)

    def network_time(self, t: int) -> float:
        """The time step the network sees at sampling step t (DA-CLIP: ``t * T / sample_T``)."""
        return t * self.time_scale

    def initial_state(self, mu: np.ndarray, z: np.ndarray) -> np.ndarray:
        return (mu + z * self.max_sigma).astype(np.float32)

    def clean_estimate(self, x: np.ndarray, noise: np.ndarray, t: int, mu: np.ndarray) -> np.ndarray:
        return (x - mu - self.sigma_bars[t] * noise) * np.exp(self.thetas_cumsum[t] * self.dt) + mu

    def posterior_mean(self, x: np.ndarray, x0: np.ndarray, t: int, mu: np.ndarray) -> np.ndarray:
        a = np.exp(-self.thetas[t] * self.dt)
        b = np.exp(-self.thetas_cumsum[t] * self.dt)
        c = np.exp(-self.thetas_cumsum[t - 1] * self.dt)
        return (a * (1 - c ** 2) / (1 - b ** 2)) * (x - mu) + (c * (1 - a ** 2) / (1 - b ** 2)) * (x0 - mu) + mu

    def posterior_std(self, t: int) -> np.float32:
        a = np.exp(-2 * self.thetas[t] * self.dt)
        b = np.exp(-2 * self.thetas_cumsum[t] * self.dt)
        c = np.exp(-2 * self.thetas_cumsum[t - 1] * self.dt)
        var = max((1 - a) * (1 - c) / (1 - b), np.float32(1e-20) * self.dt)
        return np.float32(np.exp(0.5 * np.log(var)) * self.max_sigma)

    def step(self, x: np.ndarray, noise: np.ndarray, t: int, mu: np.ndarray, z: np.ndarray) -> np.ndarray:
        """One posterior step from state ``x`` at t to t - 1, given the predicted noise and a draw ``z``."""
        mean = self.posterior_mean(x, self.clean_estimate(x, noise, t, mu), t, mu)
        return (mean + self.posterior_std(t) * z).astype(np.float32)

    def sample(self, mu: np.ndarray, predict_noise: PredictNoise, noise: NoiseSource | None = None,
               seed: int | None = None, on_step: Callable[[int, np.ndarray], None] | None = None) -> np.ndarray:
        """Sample the clean image for the degraded image ``mu`` (float32, any shape).

        ``noise``: a callable returning standard-normal float32 arrays of a shape, called for the initial
        state and then once per step (DA-CLIP's order); default: numpy's generator seeded with ``seed``.
        ``on_step(t, state)`` after each step (progress, saving states).
        """
        mu = np.asarray(mu, dtype=np.float32)
        if noise is None:
            rng = np.random.default_rng(seed)
            noise = lambda shape: rng.standard_normal(shape, dtype=np.float32)  # noqa: E731
        x = self.initial_state(mu, _draw(noise, mu.shape))
        for t in range(self.steps, 0, -1):
            x = self.step(x, np.asarray(predict_noise(x, self.network_time(t)), np.float32), t, mu,
                          _draw(noise, mu.shape))
            if on_step is not None:
                on_step(t, x)
        return x


def example_sampler_values(pixels: np.ndarray, settings: SDESettings, seed: int = 0) -> dict[str, np.ndarray]:
    """States and time steps a denoiser meets while sampling, one per row of ``pixels`` [N, 3, H, W]:
    rows spread from t = T (nearly pure noise) to t = 1, each the image plus noise of that step's level.
    Export validation, ``compare`` and ``bench`` feed these (the sampler's two sources)."""
    sde = IRSDE(settings)
    n = pixels.shape[0]
    steps = np.linspace(settings.T, 1, n).round().astype(int) if n > 1 else np.array([settings.T // 2 or 1])
    z = np.random.default_rng(seed).standard_normal(pixels.shape, dtype=np.float32)
    level = sde.sigma_bars[steps].reshape(-1, *[1] * (pixels.ndim - 1))
    return {SAMPLER_STATE: (pixels + level * z).astype(np.float32), SAMPLER_TIME: steps.astype(np.float32)}


def spatial_sources(graph, settings: SDESettings | None, pixels: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """What the pipeline hands a graph's spatial networks for a padded pixel batch: PIXELS and, for a
    diffusion graph, example states and time steps (``example_sampler_values``)."""
    values = {PIXELS: pixels}
    if graph.sampler:
        values.update(example_sampler_values(pixels, settings, seed))
    return values


def _draw(noise: NoiseSource, shape: tuple[int, ...]) -> np.ndarray:
    z = np.asarray(noise(shape), dtype=np.float32)
    if z.shape != tuple(shape):
        raise UsageError(f"the noise source returned shape {z.shape}, expected {tuple(shape)}")
    return z
