"""Effect of onnxruntime CPU session options on the encoder and the restorer (one process, one run).

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 \
        python benchmarks/ort_options.py BUNDLE --size 512 --iters 5 --json benchmarks/results/ort_options.json

Each variant changes one thing from the baseline (ORT_ENABLE_ALL, intra-op threads = cores, spinning on,
sequential execution, memory pattern on) and runs alternately with the baseline session, so slow drift of a
shared machine cancels. Times are medians in ms; ratios are baseline / variant (> 1 = faster).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_record import record  # noqa: E402

VARIANTS = {
    "baseline (all)": {},
    "level extended": {"level": "extended"},
    "level basic": {"level": "basic"},
    "no NchwcTransformer": {"disabled": ["NchwcTransformer"]},
    "intra_op threads 1": {"threads": 1},
    "spinning off": {"config": {"session.intra_op.allow_spinning": "0"}},
    "parallel execution": {"parallel": True},
    "memory pattern off": {"mem_pattern": False},
    "denormals as zero": {"config": {"session.set_denormal_as_zero": "1"}},
}


def session(path: Path, variant: dict, cores: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                                     "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                     "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC}[variant.get("level", "all")]
    opts.intra_op_num_threads = variant.get("threads", cores)
    if variant.get("parallel"):
        opts.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    opts.enable_mem_pattern = variant.get("mem_pattern", True)
    for key, value in variant.get("config", {}).items():
        opts.add_session_config_entry(key, value)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"],
                                disabled_optimizers=variant.get("disabled", []))


def paired_ms(base, sess, feeds: dict, warmup: int, iters: int) -> tuple[float, float]:
    """Median ms of the baseline and the variant session, run alternately (drift on a shared machine cancels)."""
    for _ in range(warmup):
        base.run(None, feeds)
        sess.run(None, feeds)
    times: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(iters):
        for i, s in enumerate((base, sess)):
            start = time.perf_counter()
            s.run(None, feeds)
            times[i].append(time.perf_counter() - start)
    return float(np.median(times[0]) * 1e3), float(np.median(times[1]) * 1e3)


def feeds_for(bundle, size: int) -> dict:
    """Random feeds of every network's inputs (names and shapes from the spec; spatial axes = size)."""
    rng = np.random.default_rng(0)
    axes = {"batch": 1, "height": size, "width": size}
    return {net: {t.name: rng.random(t.concrete(axes), dtype=np.float32) for t in spec.inputs}
            for net, spec in bundle.specs.items()}


def main() -> int:
    from mmfir.runtime.bundle import Bundle
    from mmfir.runtime.cpu import usable_cores

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    bundle = Bundle.open(args.bundle)
    feeds, cores = feeds_for(bundle, args.size), usable_cores()
    results = {}
    base = {net: session(bundle.onnx_path(net), VARIANTS["baseline (all)"], cores) for net in feeds}
    for name, variant in list(VARIANTS.items())[1:]:
        results[name] = {}
        for net in feeds:
            pair = paired_ms(base[net], session(bundle.onnx_path(net), variant, cores), feeds[net],
                             args.warmup, args.iters)
            results[name][net] = {"baseline_ms": pair[0], "variant_ms": pair[1], "ratio": pair[0] / pair[1]}
        print(f"... {name}: " + ", ".join(f"{k} {v['variant_ms']:.1f} ms (x{v['ratio']:.2f})"
                                          for k, v in results[name].items()), file=sys.stderr)
    print(f"| option ({bundle.config.get('name')}, {args.size}²) | " + " | ".join(f"{n} ms | x" for n in feeds) + " |")
    print("|---|" + "---|---|" * len(feeds))
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{v['variant_ms']:.1f} (base {v['baseline_ms']:.1f}) | {v['ratio']:.2f}"
                                          for v in r.values()) + " |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"machine": record(), "size": args.size, "results": results},
                                                  indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
