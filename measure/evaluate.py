"""Evaluation on clean images: degrade each with every degradation at several strengths (fixed
seeds), restore, and score PSNR/SSIM before and after plus the predicted degradation class. The
demo's held-out set is 4 photos x 6 degradations x 3 strengths (0.25, 0.5, 0.75) = 72 cases.

Independent of how images are restored: ``evaluate_cases`` takes a function that maps a list of
degraded images to ``(restored images, labels, confidences)``; the CLI passes the runtime pipeline,
training passes the torch model.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

from .degradations import DEGRADATIONS, degrade
from .metrics import psnr, ssim

DEMO_STRENGTHS = (0.25, 0.5, 0.75)
DEMO_SEED = 0

RestoreFn = Callable[[list[np.ndarray]], tuple[list[np.ndarray], list[str], list[float]]]


@dataclass
class Case:
    photo: str
    degradation: str
    strength: float
    clean: np.ndarray
    degraded: np.ndarray


@dataclass
class Score:
    photo: str
    degradation: str
    strength: float
    predicted: str
    confidence: float
    psnr_before: float
    psnr_after: float
    ssim_before: float
    ssim_after: float


def make_cases(images: dict[str, np.ndarray], degradations: Sequence[str] = tuple(DEGRADATIONS),
               strengths: Sequence[float] = DEMO_STRENGTHS, seed: int = DEMO_SEED) -> list[Case]:
    """Every image with every degradation at every strength; each case has its own seeded generator."""
    cases = []
    for i, (name, clean) in enumerate(images.items()):
        for j, deg in enumerate(degradations):
            for k, strength in enumerate(strengths):
                rng = np.random.default_rng([seed, i, j, k])
                cases.append(Case(name, deg, float(strength), clean, degrade(clean, deg, strength, rng)))
    return cases


def case_name(case: Case | Score) -> str:
    """``photo_degradation_sNN``: the file stem of a case's images (NN = strength x 100)."""
    return f"{case.photo.rsplit('.', 1)[0]}_{case.degradation}_s{round(case.strength * 100):02d}"


def score_case(case: Case, restored: np.ndarray, label: str, confidence: float) -> Score:
    return Score(case.photo, case.degradation, case.strength, label, float(confidence),
                 psnr(case.clean, case.degraded), psnr(case.clean, restored),
                 ssim(case.clean, case.degraded), ssim(case.clean, restored))


def evaluate_cases(cases: list[Case], restore: RestoreFn, batch: int = 1, on_done=None) -> list[Score]:
    """Restore every case (``batch`` at a time) and score it; ``on_done(case, restored)`` after each."""
    scores = []
    for k in range(0, len(cases), batch):
        chunk = cases[k:k + batch]
        restored, labels, confs = restore([c.degraded for c in chunk])
        for case, img, lab, conf in zip(chunk, restored, labels, confs):
            scores.append(score_case(case, img, lab, conf))
            if on_done:
                on_done(case, img)
    return scores


def summarize(scores: list[Score]) -> list[dict]:
    """Per degradation: means of PSNR/SSIM before and after, gain, accuracy; then 'mean' over all."""
    rows = []
    for deg in dict.fromkeys(s.degradation for s in scores):
        rows.append(_row(deg, [s for s in scores if s.degradation == deg]))
    rows.append(_row("mean", scores))
    return rows


def _row(name: str, group: list[Score]) -> dict:
    mean = lambda key: float(np.mean([getattr(s, key) for s in group]))  # noqa: E731
    return {"degradation": name, "n": len(group),
            "accuracy": float(np.mean([s.predicted == s.degradation for s in group])),
            "confidence": mean("confidence"),
            "psnr_before": mean("psnr_before"), "psnr_after": mean("psnr_after"),
            "psnr_gain": mean("psnr_after") - mean("psnr_before"),
            "ssim_before": mean("ssim_before"), "ssim_after": mean("ssim_after")}


def format_scores(scores: list[Score]) -> str:
    """One line per case, then the per-degradation summary."""
    head = f"{'image':<14} {'degradation':<16} {'str':>4} {'predicted':<16} {'conf':>5}  {'PSNR in':>7} " \
           f"{'PSNR out':>8}  {'SSIM in':>7} {'SSIM out':>8}"
    lines = [head, "-" * len(head)]
    for s in scores:
        mark = "" if s.predicted == s.degradation else " *"
        lines.append(f"{s.photo[:14]:<14} {s.degradation:<16} {s.strength:4.2f} {s.predicted + mark:<16} "
                     f"{s.confidence:5.2f}  "
                     f"{s.psnr_before:7.2f} {s.psnr_after:8.2f}  {s.ssim_before:7.4f} {s.ssim_after:8.4f}")
    lines += ["", format_summary(summarize(scores))]
    return "\n".join(lines)


def format_summary(rows: list[dict]) -> str:
    head = f"{'degradation':<16} {'n':>3} {'acc':>5}  {'PSNR in':>7} {'PSNR out':>8} {'gain':>6}  " \
           f"{'SSIM in':>7} {'SSIM out':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['degradation']:<16} {r['n']:>3} {r['accuracy']:5.0%}  {r['psnr_before']:7.2f} "
                     f"{r['psnr_after']:8.2f} {r['psnr_gain']:+6.2f}  {r['ssim_before']:7.4f} {r['ssim_after']:8.4f}")
    return "\n".join(lines)


def scores_json(scores: list[Score]) -> str:
    return json.dumps({"cases": [asdict(s) for s in scores], "summary": summarize(scores)}, indent=2)
