"""Make tests/data/irsde_ref.npz with DA-CLIP's own IR-SDE code (not part of the suite; run by hand).

    git clone https://github.com/Algolzw/daclip-uir && cd daclip-uir && git checkout c2cc141
    python /path/to/mmfir/tests/data/make_irsde_ref.py universal-image-restoration/utils/sde_utils.py OUT.npz

Runs DA-CLIP's ``IRSDE`` (max_sigma 50, T 100, cosine, eps 0.005: its universal-ir test options) with
sample_T 100 and 20 on a small random "degraded image", with a fixed stand-in for the U-Net's noise
prediction (a smooth function of the state, the condition and the time step) so the sampler's arithmetic
and its draw order are what is compared. Every ``torch.randn_like`` draw is recorded: the initial state
(``noise_state``) first, then one per step (``reverse_posterior_step``). Saved: the schedule arrays, the
draws, the initial and final states, all float32.
"""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import torch


def stand_in_model(x, mu, t, **_):
    return 0.5 * torch.tanh(3 * (x - mu)) + 0.001 * t * torch.cos(7 * mu)


def main(sde_utils_path: str, out: str) -> None:
    spec = importlib.util.spec_from_file_location("sde_utils", sde_utils_path)
    sde_utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sde_utils)
    torch.manual_seed(0)
    mu = torch.rand(1, 3, 12, 10)
    arrays = {"mu": mu.numpy()}
    draws: list[torch.Tensor] = []
    real_randn_like = torch.randn_like

    def recording_randn_like(x, *args, **kwargs):
        z = real_randn_like(x, *args, **kwargs)
        draws.append(z.clone())
        return z

    for steps in (100, 20):
        sde = sde_utils.IRSDE(max_sigma=50, T=100, sample_T=steps, schedule="cosine", eps=0.005, device="cpu")
        sde.set_model(stand_in_model)
        sde.set_mu(mu)
        draws.clear()
        sde_utils.torch.randn_like = recording_randn_like
        try:
            state = sde.noise_state(mu)
            with torch.no_grad():
                final = sde.reverse_posterior(state)
        finally:
            sde_utils.torch.randn_like = real_randn_like
        for name in ("thetas", "sigmas", "thetas_cumsum", "sigma_bars"):
            arrays[f"s{steps}_{name}"] = getattr(sde, name).numpy()
        arrays[f"s{steps}_dt"] = np.float32(sde.dt)
        arrays[f"s{steps}_draws"] = torch.stack(draws).numpy()
        arrays[f"s{steps}_initial"] = state.numpy()
        arrays[f"s{steps}_final"] = final.numpy()
        print(f"sample_T {steps}: {len(draws)} draws, final state range [{final.min():.3f}, {final.max():.3f}]")
    np.savez_compressed(out, **arrays)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
