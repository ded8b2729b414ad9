"""`mmfir bench BUNDLE`: speed of each backend against torch eager FP32 (same run), with FLOP efficiency.

Each backend runs in its own subprocess with MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000
(a fair torch baseline; see measure/bench.py). Prints a table; writes JSON and a PNG plot on request.
"""
from __future__ import annotations

import sys

from mmfir.runtime.errors import UsageError


def add_parser(sub):
    p = sub.add_parser("bench", help="latency/throughput of each backend against torch eager FP32",
                       description="Warm up, then time encoder, restorer and end to end per backend, size and "
                                   "batch; each backend in its own process (honest peak memory, fair malloc).")
    p.add_argument("bundle", help="bundle folder")
    p.add_argument("--backends", default=None,
                   help="comma-separated targets NAME[-PRECISION] (default: torch eager FP32 and every deployable "
                        "backend at every precision it runs here); also torch-compile (torch.compile + freezing)")
    p.add_argument("--sizes", default="256,512,1024", help="square image sizes (default 256,512,1024)")
    p.add_argument("--batch", default="1", help="batch sizes, comma-separated (default 1)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs per point (default 2)")
    p.add_argument("--iters", type=int, default=10, help="timed runs per point (default 10)")
    p.add_argument("--threads", type=int, help="CPU threads per backend (default: each backend's own)")
    p.add_argument("--networks", help="which to time, comma-separated (default: every network of the bundle and "
                                      "end_to_end)")
    p.add_argument("--checkpoint", help="checkpoint for torch / torch-compile (default: the bundle's record)")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="write the report as JSON")
    p.add_argument("--steps", type=int, help="a diffusion bundle's sampling steps end to end (default: its T)")
    p.add_argument("--plot", metavar="OUT.png", help="write a latency-vs-size plot (needs matplotlib: mmfir[plot])")
    p.set_defaults(func=run)


def int_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{flag} takes comma-separated integers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise UsageError(f"{flag} needs positive integers, got {text!r}")
    return values


def settings_from(args, bundle):
    from mmfir.measure.bench import BenchSettings, measured_networks
    from mmfir.runtime.pipeline import check_sampling

    known = measured_networks(bundle)
    networks = tuple(n.strip() for n in args.networks.split(",") if n.strip()) if args.networks else known
    unknown = [n for n in networks if n not in known]
    if unknown or not networks:
        raise UsageError(f"--networks: unknown {', '.join(unknown) or '(none)'}; choose from {', '.join(known)}")
    if args.warmup < 1 or args.iters < 1:
        raise UsageError("--warmup and --iters must be at least 1")
    check_sampling(bundle, steps=args.steps)  # before any measurement
    return BenchSettings(int_list(args.sizes, "--sizes"), int_list(args.batch, "--batch"), args.warmup,
                         args.iters, args.threads, networks, args.steps)


def run(args) -> int:
    from mmfir.measure.bench import default_targets, run_bench
    from mmfir.measure.bench_report import format_markdown, format_table, write_plot
    from mmfir.measure.targets import parse_targets
    from mmfir.runtime.bundle import Bundle
    from mmfir.runtime.files import write_json_atomic
    from mmfir.runtime.progress import Progress

    from ..common import torch_options

    bundle = Bundle.open(args.bundle)
    targets = parse_targets(args.backends) if args.backends else default_targets(bundle)
    settings = settings_from(args, bundle)
    if args.plot:
        check_matplotlib()
    report = run_bench(bundle, targets, settings, torch_options(args.checkpoint), Progress(len(targets), "bench"))
    report["markdown"] = format_markdown(report)
    print(format_table(report))
    if args.json_out:
        write_json_atomic(args.json_out, report)
    if args.plot:
        write_plot(report, args.plot)
    errors = [f"{label}: {info['error']}" for label, info in report["backends"].items() if info.get("error")]
    for line in errors:
        print(f"mmfir bench: FAILED {line}", file=sys.stderr)
    return 1 if errors else 0


def check_matplotlib() -> None:
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--plot needs matplotlib: pip install 'mmfir[plot]' (or matplotlib)")
