"""Regenerate the README's CPU performance table: `mmfir bench` on a bundle, saved with the machine record.

    python benchmarks/random_bundle.py base bundles/base            # once: base with random weights
    python benchmarks/cpu_table.py bundles/base --sizes 512 --iters 5
    python benchmarks/cpu_table.py bundles/tiny-random --sizes 256,512,1024 --iters 5

Writes benchmarks/results/cpu_<model>_<date>.{json,md,png}. Every backend runs in its own process with
MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 (see measure/bench.py); ratios are to torch eager
FP32 in the same run; torch.compile's compile time is excluded (warm-up).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_record import record  # noqa: E402

BACKENDS = "torch,torch-compile,ort-cpu,ort-cpu-fp16,ov-cpu,ov-cpu-bf16"
RESULTS = Path(__file__).resolve().parent / "results"


def headline(report: dict, size: int) -> str:
    """One line per backend: end-to-end p50 at ``size`` (batch 1) and the ratio to torch eager."""
    rows = [r for r in report["results"] if r["network"] == "end_to_end" and r["size"] == size and r["batch"] == 1]
    lines = [f"| backend (end to end, {size}², batch 1) | p50 ms | x torch eager FP32 | x (min) | GFLOP/s "
             "| % of peak |",
             "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["p50_ms"]):
        frac = f"{100 * r['peak_fraction']:.0f}" if r.get("peak_fraction") else "-"
        gf = f"{r['gflops_per_s']:.0f}" if r.get("gflops_per_s") else "-"
        lines.append(f"| {r['backend']}/{r['precision']} | {r['p50_ms']:.0f} | {r['speedup_vs_torch']:.2f} "
                     f"| {r['speedup_vs_torch_min']:.2f} | {gf} | {frac} |")
    return "\n".join(lines)


def markdown(report: dict, command: str, size: int) -> str:
    from mmfir.measure.bench_report import format_markdown

    m = report["machine"]
    peaks = ", ".join(f"{k.upper()} {v['gflops']:.0f} GFLOP/s ({v['how']})" for k, v in report["peak"].items()
                      if isinstance(v, dict) and v.get("gflops"))
    return "\n\n".join([
        f"# CPU benchmark: {report['bundle']['model']} ({m['date']})",
        f"Machine: {m['cpu']}, {m['cores']} cores, ISA {', '.join(m['isa'])}; load average at start "
        f"{m['load_average_1_5_15']}; versions {m['versions']}. Matmul peak: {peaks}.",
        f"Command: `{command}`", "Notes: " + "; ".join(report["notes"]),
        headline(report, size), "All rows:", format_markdown(report)]) + "\n"


def main() -> int:
    from mmfir.measure.bench import BenchSettings, run_bench
    from mmfir.measure.bench_report import format_table, write_plot
    from mmfir.runtime.bundle import Bundle
    from mmfir.runtime.files import write_json_atomic
    from mmfir.runtime.progress import Progress
    from mmfir.measure.targets import parse_targets

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--backends", default=BACKENDS)
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--batch", default="1")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--headline-size", type=int, default=512)
    ap.add_argument("--timeout", type=float, default=1200, help="seconds per backend process")
    args = ap.parse_args()
    bundle, targets = Bundle.open(args.bundle), parse_targets(args.backends)
    settings = BenchSettings([int(s) for s in args.sizes.split(",")], [int(b) for b in args.batch.split(",")],
                             args.warmup, args.iters, timeout_s=args.timeout)
    machine = record()
    report = run_bench(bundle, targets, settings, progress=Progress(len(targets), "cpu_table"))
    report["machine"] = {**report["machine"], **machine}
    cap = report["machine"].get("isa_cap")  # MMFIR_CPU_ISA: an emulated machine kind, named as such
    stem = RESULTS / f"cpu_{report['bundle']['model']}{'_' + cap['cap'] + 'cap' if cap else ''}_{time.strftime('%Y%m%d-%H%M')}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json_atomic(stem.with_suffix(".json"), report)
    command = "python benchmarks/cpu_table.py " + " ".join(sys.argv[1:])
    stem.with_suffix(".md").write_text(markdown(report, command, args.headline_size))
    write_plot(report, stem.with_suffix(".png"))
    print(format_table(report))
    print(f"wrote {stem}.json/.md/.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
