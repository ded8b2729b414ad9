"""Make tests/data/sample_ref.npz: DA-CLIP's IRSDE sampler driving its own ConditionalUNet (run by hand).

    git clone https://github.com/Algolzw/daclip-uir && cd daclip-uir && git checkout c2cc141
    cd universal-image-restoration/config/daclip-sde && pip install einops
    PYTHONPATH=.:../..:/path/to/mmfir/tests/data python /path/to/mmfir/tests/data/make_sample_ref.py OUT.npz

The end-to-end reference for the diffusion restorer: DA-CLIP's own ``IRSDE`` (utils/sde_utils.py; max_sigma
50, T 100, cosine, eps 0.005, its universal-ir test options) runs ``noise_state`` then ``reverse_posterior``
with sample_T 100 and 20, as its test script does, the network being its own ``ConditionalUNet`` in the
reduced-width layout of make_sde_unet_ref.py (weights from ``sde_unet_weights.seeded_weights``). The degraded
image is a random 8-bit image of an odd size (23x29, so DA-CLIP's reflect padding is exercised at every
step), the contexts random 32-d vectors. Every ``torch.randn_like`` draw the sampler makes is replaced by
``numpy.random.default_rng(SEED).standard_normal`` in float32, in DA-CLIP's order (the initial state, then
one per step), so a test replays the same noise without storing it. Saved: the inputs, the initial state,
and the states after every 25th step of 100 (every 5th of 20), float32.
"""
from __future__ import annotations

import json
import sys

import numpy as np
import torch

from models.modules.DenoisingUNet_arch import ConditionalUNet
from sde_unet_weights import seeded_weights
from utils import sde_utils

SETTINGS = dict(in_nc=3, out_nc=3, nf=32, ch_mult=[1, 1, 1, 1], context_dim=32,
                use_degra_context=True, use_image_context=True)
SIZE = (23, 29)
SEED = 1234
STEPS = {100: 25, 20: 5}  # sample_T: record the state after every k-th step


def main(out: str) -> None:
    net = ConditionalUNet(**SETTINGS).eval()
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    net.load_state_dict({k: torch.from_numpy(v) for k, v in seeded_weights(shapes).items()})
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    text, image = (rng.standard_normal((1, 32)).astype(np.float32) for _ in range(2))
    mu = torch.from_numpy(np.moveaxis(pixels.astype(np.float32) / 255, 2, 0)[None].copy())
    arrays = {"pixels": pixels, "text_context": text, "image_context": image, "seed": np.int64(SEED),
              "settings": np.array(json.dumps(SETTINGS))}
    real_randn_like = sde_utils.torch.randn_like
    for steps, every in STEPS.items():
        draws = np.random.default_rng(SEED)
        sde_utils.torch.randn_like = lambda x, *a, **k: torch.from_numpy(
            draws.standard_normal(tuple(x.shape), dtype=np.float32))
        states = []
        real_step = sde_utils.IRSDE.reverse_posterior_step

        def recording_step(self, xt, noise, t):
            x = real_step(self, xt, noise, t)
            if (steps - t + 1) % every == 0:  # t runs from steps down to 1
                states.append(x.clone())
            return x

        sde = sde_utils.IRSDE(max_sigma=50, T=100, sample_T=steps, schedule="cosine", eps=0.005, device="cpu")
        sde.set_model(net)
        sde.set_mu(mu)
        sde_utils.IRSDE.reverse_posterior_step = recording_step
        try:
            state = sde.noise_state(mu)
            with torch.no_grad():
                final = sde.reverse_posterior(state, text_context=torch.from_numpy(text),
                                              image_context=torch.from_numpy(image))
        finally:
            sde_utils.torch.randn_like = real_randn_like
            sde_utils.IRSDE.reverse_posterior_step = real_step
        assert torch.equal(states[-1], final)
        arrays[f"s{steps}_initial"] = state.numpy()
        arrays[f"s{steps}_states"] = torch.cat(states).numpy()  # after steps every, 2*every, ..., steps
        print(f"sample_T {steps}: {len(states)} states kept, final range [{final.min():.2f}, {final.max():.2f}], "
              f"rms {float(final.square().mean().sqrt()):.2f}")
    np.savez_compressed(out, **arrays)


if __name__ == "__main__":
    main(sys.argv[1])
