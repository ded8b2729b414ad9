"""DA-CLIP's own sampler and U-Net on the CPU vs mmfir's deployed loop: one image, same weights and noise.

    git clone https://github.com/Algolzw/daclip-uir /tmp/daclip && git -C /tmp/daclip checkout c2cc141
    pip install einops   # DA-CLIP's U-Net imports it
    python benchmarks/daclip_speed.py /tmp/daclip/universal-image-restoration CHECKPOINT.safetensors \\
        --bundle BUNDLE --backend ov-cpu --size 256 --steps 100

CHECKPOINT is an mmfir diffusion checkpoint (``mmfir import daclip --restorer``, or random weights from
``benchmarks/random_bundle.py``); its U-Net weights are loaded into DA-CLIP's own ``ConditionalUNet``
(the key layouts are the same), so both sides run the same network. DA-CLIP's side is its ``IRSDE``
(``noise_state`` + ``reverse_posterior``, as its test script samples) on the CPU; its scripts' ``.cuda()``
calls are avoided by using the modules directly. mmfir's side is ``Pipeline.restore`` on the bundle
(encoder included, whole image). Both get the encoder's contexts and the same seeded numpy draws, so the
script also prints the relative L2 error between the two final states. One timed run each after one
warm-up call, mmfir first; the machine record comes first. DA-CLIP's code is imported from the path
given; nothing of it is in mmfir.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def daclip_modules(root: Path):
    sys.path[:0] = [str(root), str(root / "config" / "daclip-sde")]
    from models.modules.DenoisingUNet_arch import ConditionalUNet
    from utils import sde_utils

    return ConditionalUNet, sde_utils


def main() -> int:
    import torch

    from mmfir.cli.common import open_bundle
    from mmfir.measure.artifacts import square_photo
    from mmfir.measure.photos import load_photo
    from mmfir.models import load_checkpoint
    from mmfir.runtime.backends.base import create_backend
    from mmfir.runtime.cpu import cpu_model, reported_features
    from mmfir.runtime.pipeline import Pipeline
    from mmfir.runtime.spec import CONTENT, DEGRADATION, ENCODER, output_ref

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("daclip", type=Path, help="DA-CLIP's universal-image-restoration folder (commit c2cc141)")
    p.add_argument("checkpoint", help="an mmfir diffusion checkpoint")
    p.add_argument("--bundle", help="its exported bundle (default: exported into the cache)")
    p.add_argument("--backend", default="ov-cpu")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--photo", default="chelsea")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    ConditionalUNet, sde_utils = daclip_modules(args.daclip)

    model, _ = load_checkpoint(args.checkpoint)
    if model.cfg.diffusion is None:
        raise SystemExit(f"error: {args.checkpoint} has no diffusion restorer; import one with --restorer")
    unet, sde = model.cfg.diffusion.unet, model.cfg.diffusion.sde
    bundle = open_bundle(args.bundle, None if args.bundle else args.checkpoint)
    image = (square_photo(load_photo(args.photo), args.size) * 255).round().astype(np.uint8)
    print(f"machine: {cpu_model()} ({', '.join(reported_features())}), torch threads {torch.get_num_threads()}; "
          f"{args.size}x{args.size} {args.photo}, {args.steps} steps, U-Net nf {unet.nf} ch_mult {list(unet.ch_mult)}")

    contexts = {}  # the encoder's outputs of mmfir's run, handed to DA-CLIP's sampler

    def run_sampler(images, values):
        contexts.update(values)
        return real_run_sampler(images, values)

    backend = create_backend(args.backend, bundle)
    Pipeline(backend, tile=0, steps=1).restore([image])  # warm-up: compiles for this shape
    rng = np.random.default_rng(args.seed)
    pipeline = Pipeline(backend, tile=0, steps=args.steps,
                        noise=lambda shape: rng.standard_normal(shape, dtype=np.float32),
                        on_step=lambda k, n: k % 10 == 0 and print(f"  mmfir step {k}/{n}", flush=True))
    real_run_sampler = pipeline.run_sampler
    pipeline.run_sampler = run_sampler
    start = time.perf_counter()
    final_ours = pipeline.restore([image])[0].restored  # the sampler's final state, unclipped
    ours_s = time.perf_counter() - start

    net = ConditionalUNet(in_nc=unet.in_nc, out_nc=unet.out_nc, nf=unet.nf, ch_mult=list(unet.ch_mult),
                          context_dim=unet.context_dim, use_degra_context=unet.use_degra_context,
                          use_image_context=unet.use_image_context).eval()
    net.load_state_dict(model.denoiser.state_dict(), strict=True)
    irsde = sde_utils.IRSDE(max_sigma=sde.max_sigma, T=sde.T, sample_T=args.steps, schedule=sde.schedule,
                            eps=sde.eps, device="cpu")
    mu = torch.from_numpy(np.moveaxis(image.astype(np.float32) / 255, 2, 0)[None].copy())
    print("  DA-CLIP sampling (its tqdm bar below)", flush=True)
    irsde.set_model(net)
    irsde.set_mu(mu)
    draws = np.random.default_rng(args.seed)
    sde_utils.torch.randn_like = lambda x, *a, **k: torch.from_numpy(
        draws.standard_normal(tuple(x.shape), dtype=np.float32))
    text = torch.from_numpy(contexts[output_ref(ENCODER, DEGRADATION)])
    content = torch.from_numpy(contexts[output_ref(ENCODER, CONTENT)])
    with torch.no_grad():  # warm-up: one call of the network
        net(mu, mu, torch.tensor([float(sde.T)]), text_context=text, image_context=content)
    start = time.perf_counter()
    with torch.no_grad():
        theirs = irsde.reverse_posterior(irsde.noise_state(mu), text_context=text, image_context=content)
    theirs_s = time.perf_counter() - start

    final_theirs = np.moveaxis(theirs[0].numpy(), 0, 2)
    diff = np.linalg.norm(final_ours - final_theirs) / np.linalg.norm(final_theirs)
    print(f"DA-CLIP (torch {torch.__version__}, its IRSDE + ConditionalUNet): {theirs_s:7.1f} s, "
          f"{theirs_s / args.steps * 1e3:6.0f} ms/step")
    print(f"mmfir {args.backend} (Pipeline.restore, encoder included): {ours_s:7.1f} s, "
          f"{ours_s / args.steps * 1e3:6.0f} ms/step")
    print(f"speed-up {theirs_s / ours_s:.2f}x; relative L2 between the final states: {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
