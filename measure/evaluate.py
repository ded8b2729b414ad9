"""Evaluation on clean images: degrade each with every degradation (fixed seed, mid strength),
restore, and score PSNR/SSIM before and after plus the predicted degradation class.

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

DEMO_STRENGTH = 0.5
DEMO_SEED = 0

RestoreFn = Callable[[list[np.ndarray]], tuple[list[np.ndarray], list[str], list[float]]]


@dataclass
class Case:
    photo: str
    degradation: str
    clean: np.ndarray
    degraded: np.ndarray


@dataclass
class Score:
    photo: str
    degradation: str
    predicted: str
    confidence: float
    psnr_before: float
    psnr_after: float
    ssim_before: float
    ssim_after: float


def make_cases(images: dict[str, np.ndarray], degradations: Sequence[str] = tuple(DEGRADATIONS),
               strength: float = DEMO_STRENGTH, seed: int = DEMO_SEED) -> list[Case]:
    """Every image with every degradation; each case has its own seeded generator (reproducible)."""
    cases = []
    for i, (name, clean) in enumerate(images.items()):
        for j, deg in enumerate(degradations):
            rng = np.random.default_rng([seed, i, j])
            cases.append(Case(name, deg, clean, degrade(clean, deg, strength, rng)))
    return cases


def score_case(case: Case, restored: np.ndarray, label: str, confidence: float) -> Score:
    return Score(case.photo, case.degradation, label, float(confidence),
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
    head = f"{'image':<14} {'degradation':<16} {'predicted':<16} {'conf':>5}  {'PSNR in':>7} {'PSNR out':>8}  " \
           f"{'SSIM in':>7} {'SSIM out':>8}"
    lines = [head, "-" * len(head)]
    for s in scores:
        mark = "" if s.predicted == s.degradation else " *"
        lines.append(f"{s.photo[:14]:<14} {s.degradation:<16} {s.predicted + mark:<16} {s.confidence:5.2f}  "
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
