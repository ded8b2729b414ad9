"""Make tests/data/sde_unet_ref.npz with DA-CLIP's own ConditionalUNet (not part of the suite; run by hand).

    git clone https://github.com/Algolzw/daclip-uir && cd daclip-uir && git checkout c2cc141
    cd universal-image-restoration/config/daclip-sde && pip install einops
    PYTHONPATH=.:/path/to/mmfir/tests/data python /path/to/mmfir/tests/data/make_sde_unet_ref.py OUT.npz

Builds ``ConditionalUNet(3, 3, nf=32, ch_mult=[1, 1, 1, 1], context_dim=32)`` with both contexts (the
universal-ir layout at reduced width: DA-CLIP's code needs nf >= 32), fills every tensor with
``sde_unet_weights.seeded_weights``, and records its output for a 37x45 input (odd: exercises its reflect
padding) at time steps 1, 37 and 100, with the state dict's keys and shapes.
"""
from __future__ import annotations

import json
import sys

import numpy as np
import torch

from models.modules.DenoisingUNet_arch import ConditionalUNet
from sde_unet_weights import seeded_weights

SETTINGS = dict(in_nc=3, out_nc=3, nf=32, ch_mult=[1, 1, 1, 1], context_dim=32,
                use_degra_context=True, use_image_context=True)
TIMES = (1, 37, 100)


def main(out: str) -> None:
    net = ConditionalUNet(**SETTINGS).eval()
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    net.load_state_dict({k: torch.from_numpy(v) for k, v in seeded_weights(shapes).items()})
    rng = np.random.default_rng(0)
    cond = rng.uniform(0, 1, (1, 3, 37, 45)).astype(np.float32)
    xt = (cond + rng.standard_normal(cond.shape) * 50 / 255).astype(np.float32)
    text, image = (rng.standard_normal((1, 32)).astype(np.float32) for _ in range(2))
    arrays = {"xt": xt, "cond": cond, "text_context": text, "image_context": image,
              "times": np.array(TIMES, dtype=np.float32), "settings": np.array(json.dumps(SETTINGS)),
              "keys": np.array(json.dumps(shapes))}
    with torch.no_grad():
        for t in TIMES:
            y = net(torch.from_numpy(xt), torch.from_numpy(cond), torch.tensor([float(t)]),
                    text_context=torch.from_numpy(text), image_context=torch.from_numpy(image))
            arrays[f"noise_t{t}"] = y.numpy()
            print(f"t={t}: output std {float(y.std()):.4f}")
    np.savez_compressed(out, **arrays)


if __name__ == "__main__":
    main(sys.argv[1])
