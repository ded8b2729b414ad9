"""The demo's measurement: degrade -> restore -> score each case, side-by-side images and a contact sheet.

Which bundle it runs (the shipped model's, exported into the cache on first use) is the command line's
business (``mmfir.cli.default_bundle``); this module needs only a pipeline.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mmfir.runtime.bundle import Bundle
from mmfir.runtime.files import atomic_write
from mmfir.runtime.progress import Progress

from .evaluate import Case, RestoreFn, Score, case_name, evaluate_cases


def held_out_names(bundle: Bundle) -> list[str]:
    """The photos the bundle's model was not trained on (from its checkpoint metadata, else the default)."""
    from .photos import HELD_OUT_PHOTOS

    meta = (bundle.manifest.get("model") or {}).get("metadata") or {}
    names = meta.get("held_out_photos")
    if isinstance(names, str):
        try:
            names = json.loads(names)
        except json.JSONDecodeError:
            names = None
    return list(names) if names else list(HELD_OUT_PHOTOS)


def pipeline_restore_fn(pipeline) -> RestoreFn:
    def restore(images: list[np.ndarray]):
        results = pipeline.restore(images)
        return ([np.clip(r.restored, 0, 1) for r in results], [r.label for r in results],
                [r.confidence for r in results])
    return restore


def run_cases(pipeline, cases: list[Case], out_dir: Path | None, progress: bool = True) -> list[Score]:
    """Restore and score every case; with ``out_dir``, write a side-by-side PNG per case and a sheet."""
    bar = Progress(len(cases), "restore", enabled=progress)
    panels: list[np.ndarray] = []

    def done(case: Case, restored: np.ndarray) -> None:
        if out_dir is not None:
            panel = side_by_side(case.degraded, restored, case.clean)
            save_png(panel, out_dir / f"{case_name(case)}.png")
            panels.append(panel)
        bar.step(f"{case.photo} {case.degradation} {case.strength:.2f}")

    scores = evaluate_cases(cases, pipeline_restore_fn(pipeline), on_done=done)
    if out_dir is not None and panels:
        save_png(contact_sheet(panels, [f"{s.photo} {s.degradation} {s.strength:.2f} -> {s.predicted} "
                                        f"{s.psnr_before:.1f}->{s.psnr_after:.1f} dB" for s in scores]),
                 out_dir / "contact_sheet.png")
    return scores


def side_by_side(degraded: np.ndarray, restored: np.ndarray, clean: np.ndarray, gap: int = 4) -> np.ndarray:
    """degraded | restored | clean, white gaps between."""
    h = degraded.shape[0]
    space = np.ones((h, gap, 3), dtype=np.float32)
    return np.concatenate([degraded, space, restored, space, clean], axis=1)


def contact_sheet(panels: list[np.ndarray], captions: list[str], height: int = 160) -> Image.Image:
    """All panels scaled to one height, stacked, each with a caption strip above."""
    rows = []
    for panel, text in zip(panels, captions):
        img = to_pil(panel)
        img = img.resize((max(1, round(img.width * height / img.height)), height), Image.BICUBIC)
        rows.append((img, text))
    width = max(img.width for img, _ in rows)
    sheet = Image.new("RGB", (width, len(rows) * (height + 16)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (img, text) in enumerate(rows):
        y = i * (height + 16)
        draw.text((4, y + 2), text, fill="black")
        sheet.paste(img, (0, y + 16))
    return sheet


def to_pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))


def save_png(image: np.ndarray | Image.Image, path: Path) -> Path:
    """Atomic PNG write (temporary file in the same folder, then rename)."""
    img = image if isinstance(image, Image.Image) else to_pil(image)
    return atomic_write(path, lambda f: img.save(f, format="PNG"))
