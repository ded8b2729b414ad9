"""Numeric comparison of network outputs against a reference, per the accuracy contract.

Used by export validation, `mmfir compare` and the serving tests alike; the bounds are the
runtime spec's ``CONTRACTS``. Every output of a
network is checked and every failure is reported at once (no stop at the first).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from mmfir.runtime.spec import CONTRACTS, NetworkSpec, OutputKind, Precision

from .metrics import psnr


@dataclass(frozen=True)
class Check:
    network: str
    output: str
    metric: str          # max_abs | mean_abs | cosine | psnr_db | class_agreement | rel_l2
    value: float
    bound: float | None  # None: reported, not checked
    passed: bool
    higher_is_better: bool = False
    pair: str = ""       # e.g. "ort-cpu/fp16 vs torch/fp32"

    def __str__(self) -> str:
        if self.bound is None:
            return f"{self.network}.{self.output} {self.metric}={self.value:.4g}"
        op = ">=" if self.higher_is_better else "<="
        state = "ok" if self.passed else "FAILED"
        pair = f" [{self.pair}]" if self.pair else ""
        return f"{self.network}.{self.output}{pair} {self.metric}={self.value:.6g} (bound {op} {self.bound:g}) {state}"

    def to_json(self) -> dict:
        return asdict(self)


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest cosine similarity over the rows (last axis = feature axis)."""
    a = a.reshape(-1, a.shape[-1]).astype(np.float64)
    b = b.reshape(-1, b.shape[-1]).astype(np.float64)
    num = np.sum(a * b, axis=-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    cos = np.where(den > 0, num / np.maximum(den, 1e-30), 1.0)
    return float(np.min(cos))


def rel_l2(reference: np.ndarray, got: np.ndarray) -> float:
    """||got - reference|| / ||reference|| over the whole array (0 when both are zero)."""
    ref, diff = reference.astype(np.float64), got.astype(np.float64) - reference.astype(np.float64)
    norm = float(np.linalg.norm(ref))
    return float(np.linalg.norm(diff)) / norm if norm > 0 else float(np.linalg.norm(diff) > 0)


def class_agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.argmax(a, axis=-1) == np.argmax(b, axis=-1)))


def check_outputs(spec: NetworkSpec, reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray],
                  precision: Precision | str, pair: str = "") -> list[Check]:
    """All checks of every output of ``spec`` (candidate vs reference) under ``precision``'s contract."""
    contract = CONTRACTS[Precision.parse(precision)]
    checks: list[Check] = []
    for out in spec.outputs:
        ref, got = np.asarray(reference[out.name]), np.asarray(candidate[out.name])
        add = lambda metric, value, bound=None, hib=False: checks.append(  # noqa: E731
            Check(spec.name, out.name, metric, value, bound,
                  True if bound is None else (value >= bound if hib else value <= bound), hib, pair))
        if ref.shape != got.shape:
            add("shape_mismatch", 1.0, 0.0)
            continue
        if not np.all(np.isfinite(got)):
            add("non_finite", float(np.sum(~np.isfinite(got))), 0.0)
            continue
        add("max_abs", max_abs(ref, got), contract.image_max_abs if out.kind == OutputKind.IMAGE else None)
        add("mean_abs", mean_abs(ref, got))
        if out.kind == OutputKind.IMAGE:
            add("psnr_db", psnr(np.clip(ref, 0, 1), np.clip(got, 0, 1)), contract.image_psnr_db, True)
        elif out.kind == OutputKind.EMBEDDING:
            add("cosine", min_cosine(ref, got), contract.embedding_cosine, True)
        elif out.kind == OutputKind.LOGITS:
            add("class_agreement", class_agreement(ref, got), contract.class_agreement, True)
        elif out.kind == OutputKind.FIELD:
            add("rel_l2", rel_l2(ref, got), contract.field_rel_l2)
    return checks


def failures(checks: list[Check]) -> list[Check]:
    return [c for c in checks if not c.passed]
