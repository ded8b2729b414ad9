"""Make a bundle of a shipped config with seeded random weights (for benchmarks: `base` is not shipped trained).

    python benchmarks/random_bundle.py base bundles/base        # ~3 min and ~6 GB RAM on 2 cores
    python benchmarks/random_bundle.py tiny bundles/tiny-random
    python benchmarks/random_bundle.py base bundles/base --int8   # adds the INT8 QDQ graphs
    python benchmarks/random_bundle.py base bundles/daclip-sde --diffusion   # + DA-CLIP's universal-ir U-Net

``--diffusion`` replaces the restorer by a denoiser in DA-CLIP's universal-ir layout (nf 64, ch_mult
[1, 2, 4, 8], both contexts at the encoder's embedding width; 49 M parameters) with its IR-SDE settings:
the full-size bundle the DA-CLIP benchmarks (daclip_speed.py, sample_tiles.py, int8_denoiser_probe.py)
and `mmfir bench` of the whole sample use.

The checkpoint is saved beside the bundle (OUT.safetensors) so the `torch` backend can load it.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from mmfir.export import export_bundle
from mmfir.models import build_model, config_from_dict, load_config, save_checkpoint
from mmfir.runtime.errors import MmfirError


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help="config name (tiny, base) or JSON path")
    p.add_argument("out", type=Path, help="bundle folder to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace an existing bundle")
    p.add_argument("--int8", action="store_true", help="add the INT8 QDQ graphs (calibrated on real photos)")
    p.add_argument("--diffusion", action="store_true", help="DA-CLIP's universal-ir U-Net instead of the restorer")
    args = p.parse_args()
    start = time.perf_counter()
    config = args.config
    if args.diffusion:
        cfg = load_config(args.config).to_dict()
        unet = {"nf": 64, "ch_mult": [1, 2, 4, 8], "context_dim": cfg["encoder"]["embed_dim"]}
        config = config_from_dict({**cfg, "name": "daclip-sde-random", "diffusion": {"unet": unet, "sde": {}}})
    checkpoint = save_checkpoint(build_model(config, seed=args.seed), args.out.with_suffix(".safetensors"),
                                 metadata={"weights": f"random, seed {args.seed}"})
    try:
        export_bundle(checkpoint, args.out, force=args.force, int8=args.int8)
    except MmfirError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"{args.out}: bundle of {args.config} with random weights in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
