"""`mmfir restore INPUT... -o OUT_DIR`: restore image files, folders and globs with a bundle.

Every file is decoded, restored and written on its own: a bad file gets one error line naming it and
the others still finish (exit 1 when some failed; 2 for usage or bundle errors). Outputs keep the
input's name and format (PNG where the format cannot hold alpha or 16 bits), are written atomically,
and never overwrite an input.
"""
from __future__ import annotations

import glob
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mmfir.runtime.errors import ImageError, MmfirError, ServerRejected, UsageError

from ..common import add_backend_options

GLOB_CHARS = "*?["


@dataclass
class FileOutcome:
    input: str
    output: str | None = None
    error: str | None = None
    label: str | None = None
    confidence: float | None = None
    probabilities: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(self.timings.values())

    def to_json(self) -> dict:
        return {"input": self.input, "output": self.output, "ok": self.error is None, "error": self.error,
                "degradation": self.label, "confidence": self.confidence, "probabilities": self.probabilities,
                "timings": {k: round(v, 6) for k, v in self.timings.items()}, "seconds": round(self.seconds, 6)}


def add_parser(sub):
    from mmfir.runtime.pipeline import DEFAULT_BATCH, DEFAULT_OVERLAP, DEFAULT_TILE

    p = sub.add_parser("restore", help="restore images with a bundle (torch-free)",
                       description="Restore image files, folders (their images, not recursive) and globs.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    p.add_argument("-o", "--out", dest="out_dir", required=True, help="output folder (created if missing)")
    p.add_argument("--bundle", help="bundle folder (default: the demo's bundle of the shipped tiny model)")
    add_backend_options(p, "auto")
    p.add_argument("--tile", type=int, default=DEFAULT_TILE, help="restorer tile size in pixels; 0 = whole image")
    p.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP, help="tile overlap in pixels (blended)")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="images (or tiles) per network call")
    p.add_argument("--checkpoint", help="checkpoint for --backend torch (default: the one recorded in the bundle)")
    p.add_argument("--max-pixels", type=float, default=100e6, help="refuse larger images (default 100e6)")
    p.add_argument("--server", metavar="URL", help="send the images to a running `mmfir serve` Triton server "
                   "(http://HOST:PORT or grpc://HOST:PORT) instead of running the bundle here")
    p.add_argument("--io-workers", type=int, default=IO_WORKERS,
                   help=f"threads decoding and writing images while the networks run (default {IO_WORKERS}; "
                        "0: one after the other)")
    p.add_argument("--steps", type=int, help="diffusion restorers: sampling steps (default: the model's T; fewer "
                   "steps resample the schedule as DA-CLIP's sample_T does)")
    p.add_argument("--seed", type=int, help="diffusion restorers: seed of the sampler's noise (repeatable runs)")
    p.add_argument("--json", action="store_true", help="print a JSON list of results on stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    from mmfir.runtime.progress import Progress

    from ..common import prepare_out_dir

    if args.io_workers < 0:
        raise UsageError(f"--io-workers must be 0 or more, got {args.io_workers}")
    paths, outcomes = expand_inputs(args.inputs)
    out_dir = prepare_out_dir(Path(args.out_dir))
    pipeline = make_pipeline(args)
    progress = Progress(len(paths), "restore")
    try:
        restore_files(pipeline, paths, out_dir, int(args.max_pixels), progress, outcomes, args.io_workers)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: running writes finished, whole outputs stay
        written = sum(1 for o in outcomes if o.output)
        print(f"mmfir restore: interrupted after writing {written} of {len(paths)} files; every output in "
              f"{out_dir} is complete, no temporary file is left", file=sys.stderr)
        raise
    order = {str(p): i for i, p in enumerate(paths)}
    outcomes.sort(key=lambda o: order.get(o.input, -1))
    print_results(outcomes, args.json)
    return 1 if any(o.error for o in outcomes) else 0


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[FileOutcome]]:
    """Files, folders (their images) and globs -> unique paths; unmatched arguments become failures."""
    from mmfir.runtime.image_io import IMAGE_SUFFIXES

    paths, failed, seen = [], [], set()
    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.exists():
            found = [p]
        elif any(c in arg for c in GLOB_CHARS):
            found = [Path(f) for f in sorted(glob.glob(arg)) if Path(f).is_file()]
        else:
            found = []
        if not found:
            failed.append(_fail(arg, f"{arg}: no such file, or no images match"))
        for f in found:
            if f.resolve() not in seen:
                seen.add(f.resolve())
                paths.append(f)
    return paths, failed


def make_pipeline(args):
    """The local Pipeline (bundle + backend + tiling options) or, with --server, the server's."""
    if args.server:
        from mmfir.runtime.serving.client import ServerPipeline

        if args.steps is not None or args.seed is not None:
            raise UsageError("--steps and --seed apply to local diffusion restorers; the server runs its own settings")
        return ServerPipeline(args.server)
    from mmfir.runtime.pipeline import Pipeline, check_sampling
    from mmfir.runtime.tiling import check_tiling

    from ..common import make_backend, open_bundle

    check_tiling(args.tile, args.overlap, 1)  # what no network could run, before any export or measurement
    bundle = open_bundle(args.bundle)
    check_tiling(args.tile, args.overlap, bundle.graph.multiple)  # before auto spends time measuring
    check_sampling(bundle, args.steps, args.seed)
    options = {"checkpoint": args.checkpoint} if args.checkpoint else {}
    return Pipeline(make_backend(bundle, args, **options), tile=args.tile, overlap=args.overlap, batch=args.batch,
                    steps=args.steps, seed=args.seed, on_step=sampling_progress if bundle.graph.sampler else None)


def sampling_progress(done: int, total: int) -> None:
    """One line per tenth of a diffusion sample (and the last step)."""
    from mmfir.runtime.progress import step_log

    if done == total or done % max(1, total // 10) == 0:
        step_log(f"sampling step {done}/{total}")


IO_WORKERS = 2  # one decoding the next batch, one writing the last: both overlap the networks


class InlineExecutor:
    """The executor interface run in the caller's thread (``--io-workers 0``: no overlap)."""

    def submit(self, fn, *args):
        from concurrent.futures import Future

        future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as err:  # noqa: BLE001 - delivered by result(), as a pool would
            future.set_exception(err)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def restore_files(pipeline, paths: list[Path], out_dir: Path, max_pixels: int, progress,
                  outcomes: list[FileOutcome], io_workers: int = IO_WORKERS) -> None:
    """Restore files in batches of same-size images; every file ends with an outcome (appended to
    ``outcomes`` as it is known, so an interrupted run still knows what was done).

    Decoding the next batch and encoding/writing the previous one run in a small thread pool while the
    networks run on the current batch (PIL and the inference libraries release the GIL). At most two
    batches of results wait to be written, so memory stays bounded. On an interrupt the writes already
    running finish (whole files), the queued ones are dropped, and the interrupt goes on.
    """
    from concurrent.futures import ThreadPoolExecutor

    groups: dict[tuple[int, int], list[Path]] = {}
    for path in paths:
        try:
            groups.setdefault(image_size(path, max_pixels), []).append(path)
        except ImageError as err:
            outcomes.append(_fail(path, str(err), progress))
    claims = OutputClaims(paths)
    batches = [g[i:i + pipeline.batch] for g in groups.values() for i in range(0, len(g), pipeline.batch)]
    io = ThreadPoolExecutor(io_workers, thread_name_prefix="mmfir-io") if io_workers > 0 else InlineExecutor()
    writes: list = []
    try:
        decoding = io.submit(decode_batch, batches[0], out_dir, max_pixels, claims, progress) if batches else None
        for k in range(len(batches)):
            decoded, failed = decoding.result()
            outcomes += failed
            if k + 1 < len(batches):
                decoding = io.submit(decode_batch, batches[k + 1], out_dir, max_pixels, claims, progress)
            restored = restore_batch(pipeline, decoded, progress)
            outcomes += [r for r in restored if isinstance(r, FileOutcome)]
            writes += [io.submit(write_result, *r, progress) for r in restored if not isinstance(r, FileOutcome)]
            while sum(not w.done() for w in writes) > 2 * pipeline.batch:  # bound the results held in memory
                next(w for w in writes if not w.done()).result()
        io.shutdown(wait=True)
    finally:
        io.shutdown(wait=True, cancel_futures=True)  # on an interrupt: running writes finish, queued ones go
        outcomes += [w.result() for w in writes if w.done() and not w.cancelled()]


def image_size(path: Path, max_pixels: int) -> tuple[int, int]:
    from mmfir.runtime.image_io import open_checked

    with open_checked(path, max_pixels) as img:
        return img.size


def decode_batch(paths, out_dir, max_pixels, claims, progress) -> tuple[list, list[FileOutcome]]:
    """([(path, image, output path, timings)], failures) for one batch (runs in the I/O pool)."""
    from mmfir.runtime.image_io import load_image, output_name
    from mmfir.runtime.timing import timed

    decoded, failed = [], []
    for path in paths:
        timings: dict = {}
        try:
            with timed(timings, "decode"):
                image = load_image(path, max_pixels)
            out = out_dir / output_name(path, image)
            claims.claim(out, path)
            decoded.append((path, image, out, timings))
        except ImageError as err:
            failed.append(_fail(path, str(err), progress))
    return decoded, failed


class OutputClaims:
    """Output paths handed out so far; an input is never an output, two inputs never share one."""

    def __init__(self, inputs: list[Path]):
        self.inputs = {p.resolve() for p in inputs}
        self.outputs: dict[Path, Path] = {}

    def claim(self, out: Path, path: Path) -> None:
        key = out.resolve()
        if key in self.inputs:
            raise ImageError(f"{path}: output {out} would overwrite an input; choose another -o folder")
        if key in self.outputs:
            raise ImageError(f"{path}: output {out} is already written for {self.outputs[key]} (same name)")
        self.outputs[key] = path


def restore_batch(pipeline, decoded, progress) -> list:
    """The networks on one batch: per file, (path, image, out, timings, result) to write, or a failure."""
    if not decoded:
        return []
    try:
        results = pipeline.restore([image for _, image, _, _ in decoded])
    except (ImageError, ServerRejected) as err:  # this batch's images were refused; the others go on
        return [_fail(path, f"{path}: {err}", progress) for path, *_ in decoded]
    except MemoryError:
        return [_fail(path, f"{path}: out of memory; use a smaller --tile or --batch", progress)
                for path, *_ in decoded]
    except MmfirError:
        raise  # bundle/backend problems concern every file
    except Exception as err:  # noqa: BLE001 - a runtime failure on these images; the others go on
        why = (str(err).strip().splitlines() or [type(err).__name__])[-1][:200]
        return [_fail(path, f"{path}: restore failed ({why})", progress) for path, *_ in decoded]
    return [(path, image, out, timings, res) for (path, image, out, timings), res in zip(decoded, results)]


def write_result(path, image, out, timings, res, progress) -> FileOutcome:
    """Encode and write one restored image atomically (runs in the I/O pool)."""
    from mmfir.runtime.image_io import encode_result, save_image
    from mmfir.runtime.timing import timed

    timings.update(res.timings)
    try:
        with timed(timings, "write"):
            save_image(encode_result(res.restored, image), out, image.icc_profile)
    except (OSError, ValueError, ImageError) as err:
        return _fail(path, f"{path}: cannot write {out}: {err}", progress)
    progress.step(path.name)
    return FileOutcome(str(path), str(out), None, res.label, res.confidence, res.probabilities, timings)


def _fail(path, message: str, progress=None) -> FileOutcome:
    print(f"mmfir restore: error: {message}", file=sys.stderr, flush=True)
    if progress is not None:
        progress.step(f"failed: {Path(path).name}")
    return FileOutcome(str(path), error=message)


def print_results(outcomes: list[FileOutcome], as_json: bool) -> None:
    if as_json:
        json.dump([o.to_json() for o in outcomes], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    width = max([len(o.input) for o in outcomes] + [4])
    print(f"{'file':<{width}}  {'degradation':<16} {'confidence':>10} {'time s':>8}")
    for o in outcomes:
        if o.error:
            print(f"{o.input:<{width}}  {'FAILED':<16} {'-':>10} {'-':>8}")
        else:
            print(f"{o.input:<{width}}  {o.label:<16} {o.confidence:>10.3f} {o.seconds:>8.3f}")
    failed = sum(1 for o in outcomes if o.error)
    print(f"{len(outcomes) - failed} restored, {failed} failed", file=sys.stderr)
