"""Seeded weights for a state dict, from key names and shapes alone (numpy only).

The reference script (run with DA-CLIP's code) and the tests (run with mmfir's) fill the same keys with
the same values this way, so no weight file needs committing. Every tensor is random, zero-initialised
ones included, so each path of the network (cross-attention, prompt) changes the output.
"""
from __future__ import annotations

import zlib

import numpy as np


def seeded_weights(shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    out = {}
    for key, shape in shapes.items():
        rng = np.random.default_rng(zlib.crc32(key.encode()))
        if len(shape) >= 2:  # conv / linear weight: variance-preserving scale
            fan_in = int(np.prod(shape[1:]))
            value = rng.standard_normal(shape) / np.sqrt(fan_in)
        elif key.endswith((".g", "norm.weight", "norm1.weight", "norm2.weight", "norm3.weight")) or key == "prompt":
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        else:  # biases
            value = 0.02 * rng.standard_normal(shape)
        out[key] = value.astype(np.float32)
    return out
