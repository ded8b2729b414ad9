"""`mmfir compare`: every backend's outputs against a reference (PyTorch FP32 by default), per contract.

Each network gets identical feeds, so errors do not compound: every network of the bundle's graph is
fed from the *reference's* values (the encoder the CLIP-preprocessed photos, the restorer each photo
reflect-padded to its multiple with the reference's mmf tokens), per the inputs' declared sources.
Every output is checked by ``checks.check_outputs`` under the candidate precision's contract (max abs,
cosine, PSNR, class agreement); SSIM of restored images is reported beside PSNR. With ``end_to_end``
each candidate also runs its own encoder -> restorer chain, reported (not checked) against the reference.

Polygraphy's Comparator was considered and not used: it compares element-wise (atol/rtol) or top-k
indices, while the contract here is cosine for embeddings, PSNR for images and argmax agreement over a
batch; and it feeds every runner the same data-loader feeds, while the restorer's feeds here come from
the reference's encoder. ``checks.check_outputs`` (shared with export validation) is the one comparison.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from mmfir.runtime.backends.base import Backend, backend_status, create_backend
from mmfir.runtime.errors import BackendUnavailable, MmfirError
from mmfir.runtime.image_io import DecodedImage
from mmfir.runtime.preprocess import ClipPreprocess
from mmfir.runtime.sde import spatial_sources
from mmfir.runtime.spec import CLIP_IMAGE, Graph, OutputKind, output_ref, rows
from mmfir.runtime.tiling import padded_batch

from .checks import Check, check_outputs
from .metrics import ssim
from .targets import REFERENCE, Target, deployable_targets, runnable

END_TO_END = "end_to_end"


@dataclass
class Feeds:
    """The photos as pipeline values, and the reference's values (inputs and outputs of every network)."""

    names: list[str]
    per_image: dict[str, np.ndarray]              # CLIP_IMAGE for all photos, one batch
    pixels: list[dict[str, np.ndarray]]           # per photo: its padded [1, 3, H', W'] pixels (sizes differ),
                                                  # with a sampler also an example state and time step
    ref_per_image: dict[str, np.ndarray] = field(default_factory=dict)
    ref_spatial: list[dict[str, np.ndarray]] = field(default_factory=list)  # per photo


@dataclass
class TargetResult:
    target: Target
    checks: list[Check] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error is None and all(c.passed for c in self.checks)

    def to_json(self) -> dict:
        return {"backend": self.target.backend, "precision": self.target.precision.value, "passed": self.passed,
                "error": self.error, "seconds": round(self.seconds, 3), "checks": [c.to_json() for c in self.checks]}


@dataclass
class CompareReport:
    reference: Target
    images: list[str]
    results: list[TargetResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)   # target label -> why (default list only)

    @property
    def reference_is_torch(self) -> bool:
        return self.reference.backend == REFERENCE

    def failures(self) -> list[str]:
        """One line per failed check or failed backend."""
        out = [f"{r.target.label}: {r.error}" for r in self.results if r.error]
        out += [str(c) for r in self.results for c in r.checks if not c.passed]
        return out

    def to_json(self) -> dict:
        return {"reference": self.reference.label, "reference_is_torch": self.reference_is_torch,
                "images": self.images, "passed": not self.failures(), "failures": self.failures(),
                "skipped": self.skipped, "results": [r.to_json() for r in self.results]}


def make_backend(target: Target, bundle, threads: int | None = None, options: dict | None = None) -> Backend:
    return create_backend(target.backend, bundle, target.precision, threads, **dict(options or {}))


def build_feeds(bundle, images: dict[str, DecodedImage]) -> Feeds:
    """The CLIP batch of all photos and one padded pixel batch per photo."""
    pre = ClipPreprocess.from_bundle(bundle)
    clip = np.stack([pre(im) for im in images.values()])
    pixels = [spatial_sources(bundle.graph, bundle.sde_settings, padded_batch([im], bundle.graph.multiple))
              for im in images.values()]
    return Feeds(list(images), {CLIP_IMAGE: clip}, pixels)


def run_reference(reference: Backend, feeds: Feeds) -> Feeds:
    """Every network on the reference: per-image networks on the batch, spatial ones per photo."""
    graph = reference.bundle.graph
    feeds.ref_per_image = graph.run(reference.run, feeds.per_image, graph.per_image)
    feeds.ref_spatial = [graph.run(reference.run, {**rows(feeds.ref_per_image, i), **px}, graph.spatial)
                         for i, px in enumerate(feeds.pixels)]
    return feeds


def outputs_of(graph: Graph, network: str, values: dict) -> dict[str, np.ndarray]:
    return {t.name: values[output_ref(network, t.name)] for t in graph[network].outputs}


def ssim_check(network: str, output: str, reference: np.ndarray, candidate: np.ndarray, pair: str) -> Check:
    """SSIM of two [1, 3, H, W] images (reported, not a contract bound)."""
    hwc = [np.clip(np.moveaxis(x[0], 0, 2), 0, 1) for x in (reference, candidate)]
    return Check(network, output, "ssim", ssim(*hwc), None, True, True, pair)


def network_checks(spec, reference: dict, candidate: dict, precision, pair: str, network: str | None = None,
                   bounded: bool = True) -> list[Check]:
    """The contract's checks of one network's outputs, plus SSIM of image outputs (reported)."""
    network = network or spec.name
    checks = check_outputs(spec, reference, candidate, precision, pair=pair)
    if not bounded:  # end to end: reported only (errors of both networks compound)
        checks = [Check(network, c.output, c.metric, c.value, None, True, c.higher_is_better, pair) for c in checks]
    for out in spec.outputs_of_kind(OutputKind.IMAGE):
        if reference[out.name].shape == candidate[out.name].shape:
            checks.append(ssim_check(network, out.name, reference[out.name], candidate[out.name], pair))
    return checks


def compare_backend(backend: Backend, feeds: Feeds, reference: Target, end_to_end: bool = False) -> list[Check]:
    """All checks of one backend: every network fed the reference's values, checked against its outputs."""
    graph, precision = backend.bundle.graph, backend.precision
    pair = f"{backend.label} vs {reference.label}"
    checks, own = [], dict(feeds.per_image)
    for network in graph.per_image:
        got = backend.run(network, graph.feeds(network, feeds.ref_per_image))
        own.update({output_ref(network, k): v for k, v in got.items()})
        checks += network_checks(graph[network], outputs_of(graph, network, feeds.ref_per_image), got, precision,
                                 f"{pair} @ {len(feeds.names)} photos")
    for i, (name, ref) in enumerate(zip(feeds.names, feeds.ref_spatial)):
        for network in graph.spatial:
            got = backend.run(network, graph.feeds(network, ref))
            checks += network_checks(graph[network], outputs_of(graph, network, ref), got, precision,
                                     f"{pair} @ {name}")
        if end_to_end:
            chain = graph.run(backend.run, {**rows(own, i), **feeds.pixels[i]}, graph.spatial)
            for network in graph.spatial:
                checks += network_checks(graph[network], outputs_of(graph, network, ref),
                                         outputs_of(graph, network, chain), precision, f"{pair} @ {name}",
                                         END_TO_END, bounded=False)
    return checks


def candidate_targets(requested: list[Target] | None, reference: Target,
                      bundle=None) -> tuple[list[Target], dict[str, str]]:
    """The targets to compare: the requested ones, or every deployable target that runs here on the
    bundle's graphs (with why the others were skipped)."""
    if requested:
        return [t for t in requested if t != reference], {}
    chosen, skipped = runnable(deployable_targets(), bundle)
    return [t for t in chosen if t != reference], skipped


def open_reference(reference: Target, bundle, threads, options: dict) -> Backend:
    ok, why = backend_status(reference.backend, reference.precision)
    if not ok:
        hint = "; compare against another backend instead, e.g. --reference ort-cpu"
        hint = hint if reference.backend == REFERENCE else ""
        raise BackendUnavailable(f"reference backend {reference.backend} is not available: {why}{hint}")
    return make_backend(reference, bundle, threads, options.get(reference.backend))


def compare(bundle, images: dict[str, DecodedImage], targets: list[Target] | None = None,
            reference: Target = Target(REFERENCE), end_to_end: bool = False, threads: int | None = None,
            options: dict[str, dict] | None = None, progress=None) -> CompareReport:
    """Run ``targets`` (default: every available backend) against ``reference`` on ``images``."""
    options = options or {}
    candidates, skipped = candidate_targets(targets, reference, bundle)
    report = CompareReport(reference, list(images), skipped=skipped)
    with open_reference(reference, bundle, threads, options) as ref:
        feeds = run_reference(ref, build_feeds(bundle, images))
    for target in candidates:
        report.results.append(compare_target(target, bundle, feeds, reference, end_to_end, threads, options))
        if progress:
            progress.step(target.label)
    return report


def compare_target(target: Target, bundle, feeds: Feeds, reference: Target, end_to_end: bool,
                   threads, options: dict) -> TargetResult:
    """One target's result; a backend that cannot run is a failed result (named), not an exception."""
    start = time.perf_counter()
    result = TargetResult(target)
    try:
        with make_backend(target, bundle, threads, options.get(target.backend)) as backend:
            result.checks = compare_backend(backend, feeds, reference, end_to_end)
    except MmfirError as err:
        result.error = str(err)
    result.seconds = time.perf_counter() - start
    return result


# --- the table --------------------------------------------------------------------------------------
COLUMNS = ("max_abs", "mean_abs", "cosine", "psnr_db", "ssim", "class_agreement", "rel_l2")


def worst(checks: list[Check]) -> Check:
    """The check with the worst value of a group (lowest for higher-is-better metrics)."""
    key = (lambda c: c.value) if checks[0].higher_is_better else (lambda c: -c.value)
    return min(checks, key=key)


def table_rows(report: CompareReport) -> list[list[str]]:
    """Rows of (backend, output, worst value per metric..., result) over all photos."""
    rows = []
    for result in report.results:
        if result.error:
            rows.append([result.target.label, "-"] + ["-"] * len(COLUMNS) + [f"ERROR: {result.error}"])
            continue
        groups: dict[tuple[str, str], dict[str, list[Check]]] = {}
        for c in result.checks:
            groups.setdefault((c.network, c.output), {}).setdefault(c.metric, []).append(c)
        for (network, output), metrics in groups.items():
            cells = [format_value(worst(metrics[m])) if m in metrics else "-" for m in COLUMNS]
            bad = [f"{m}" for m, cs in metrics.items() if not all(c.passed for c in cs)]
            verdict = "info" if network == END_TO_END else ("FAIL " + ",".join(bad) if bad else "pass")
            rows.append([result.target.label, f"{network}.{output}"] + cells + [verdict])
    return rows


def format_value(check: Check) -> str:
    v = check.value
    if math.isinf(v):
        return "inf"
    if check.metric in ("cosine", "ssim"):
        return f"{v:.6f}"
    return f"{v:.2f}" if check.metric == "psnr_db" else f"{v:.3g}"


def format_table(report: CompareReport) -> str:
    header = ["backend", "output"] + list(COLUMNS) + ["result"]
    rows = [header] + table_rows(report)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1] for r in rows]
    ref = report.reference.label
    note = (f"reference: {ref} (PyTorch FP32)" if report.reference_is_torch else
            f"reference: {ref} (NOT PyTorch: torch unavailable or not chosen; contracts checked against {ref})")
    lines.insert(0, f"{note}; photos: {', '.join(report.images)}; worst value over photos per cell")
    lines += [f"skipped {k}: {v}" for k, v in report.skipped.items()]
    return "\n".join(lines)
