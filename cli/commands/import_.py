"""`mmfir import daclip CKPT.pt --out MODEL.safetensors`: convert a foreign checkpoint into an mmfir one."""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("import", help="convert a foreign checkpoint (DA-CLIP) into an mmfir checkpoint")
    formats = p.add_subparsers(dest="format", metavar="FORMAT", required=True)
    d = formats.add_parser("daclip", help="a DA-CLIP checkpoint (github.com/Algolzw/daclip-uir), e.g. "
                           "daclip_ViT-B-32.pt: its encoder weights are mapped exactly, the restorer is new")
    d.add_argument("checkpoint", help="DA-CLIP .pt file (read with torch.load(weights_only=True))")
    d.add_argument("--out", required=True, help="mmfir checkpoint to write (.safetensors)")
    d.add_argument("--restorer-config", default="base",
                   help="config name or JSON path whose restorer section is used (default: base)")
    d.add_argument("--seed", type=int, default=0, help="seed of the restorer's random initialisation")
    d.add_argument("--restorer", metavar="UNIVERSAL_IR_PTH",
                   help="DA-CLIP's diffusion restorer (universal-ir.pth): imported as the model's restorer, "
                        "with DA-CLIP's IR-SDE settings (max_sigma 50, T 100, cosine, eps 0.005)")
    d.set_defaults(func=run)


def run(args) -> int:
    from mmfir.models.daclip import import_daclip
    from mmfir.runtime.progress import step_log

    step_log(f"reading DA-CLIP checkpoint {args.checkpoint} (weights only)")
    out = import_daclip(args.checkpoint, args.out, restorer_config=args.restorer_config, seed=args.seed,
                        restorer=args.restorer)
    if args.restorer:
        print(f"wrote {out}: DA-CLIP encoder + DA-CLIP's IR-SDE restorer ({args.restorer}); "
              f"export it with `mmfir export {out} --out BUNDLE`")
    else:
        print(f"wrote {out}: DA-CLIP encoder (10 degradation classes) + untrained restorer "
              f"('{args.restorer_config}' restorer config); train the restorer (stage 2) before use")
    return 0
