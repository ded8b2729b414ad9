"""FP32 ONNX -> INT8 QDQ ONNX: post-training static quantization calibrated on real photos.

The form is QDQ (QuantizeLinear/DequantizeLinear pairs around the quantized ops), which onnxruntime runs,
OpenVINO compiles into its int8 kernels (VNNI on AVX2/AVX-512 CPUs, AMX where present), and TensorRT's
strongly typed networks take as explicit quantization. Only convolutions are quantized: in the spatial
networks they are where the time goes; LayerNorm, Softmax, reductions and everything else stay FP32.
Weights are symmetric INT8 per output channel; activations symmetric INT8 (zero point 0) with MinMax
ranges observed on the calibration set.

Why symmetric activations (until 2026-12-07 they had zero points): TensorRT's explicit quantization takes
only zero point 0, and OpenVINO on a CPU with AMX runs a zero point as a separate int8 Subtract before
each convolution instead of inside it. Shipped tiny restorer at 512², static shape, one process
alternating the graphs (Intel Xeon with AMX, 2 cores): asymmetric 137 ms, symmetric 77 ms, FP32 102 ms;
under ``ONEDNN_MAX_CPU_ISA=AVX2`` the two are level (112 / 111 ms); onnxruntime level too (266 / 265 ms).
Held-out photos, restored vs torch FP32 (``mmfir compare``, worst photo): 46.0 dB symmetric, 45.4
asymmetric; random ``base`` export validation 53.3-54.6 dB (53.9-55.2).

What stays FP32, and why (measured on the shipped tiny model, restored PSNR vs torch FP32 on the two
validation cases; OpenVINO / onnxruntime):
- the spatial networks' first and last convolution (the image in, the residual out): quantizing the first
  one cost OpenVINO 21 dB (30.3 dB with it, 51.4 without); with both kept FP32, 53.5 / 53.5 dB;
- LayerNorm2d's channel-mean convolutions (normalisation arithmetic, as ReduceMean is elsewhere): +2.4 dB
  on onnxruntime (48.5 -> 50.9);
- MatMul and Gemm (quantized until 2026-12-07): in the restorer they only map the tokens to the per-channel
  scale and shift of the token modulation, a negligible share of the time, and their dequantized outputs
  made OpenVINO run each modulation in a planar layout behind a full-map reorder (32 ms of a 136 ms
  restorer call at 512² on AVX-512 + VNNI). Convolutions only, shipped tiny, 512²: OpenVINO INT8 142 -> 118
  ms end to end (1.23x its FP32, from 1.00x), restored 45.4 dB vs torch FP32 on the held-out photos (43.0
  before); random ``base`` meets the INT8 contract (53.9-55.2 dB; 34.5-39.9 before);
- the per-image networks (the encoder) entirely: INT8 moved the degradation embedding to cosine 0.989 and
  changed a predicted class (the contract wants 0.999 and 99 %), while it costs little of the time (the
  restorer is where the time goes). Its INT8 file is the FP32 graph; the manifest says so.

The calibration set is real photos the validation never uses (scikit-image's training photos, crops of
6 x 8 restorer multiples), fed through the model's own graph in torch so each network is calibrated on
the inputs it will see (the restorer on the torch encoder's tokens). Everything about it is recorded in
the manifest (``int8``), and the result is validated against torch FP32 under the INT8 contract.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mmfir.runtime.errors import ExportError
from mmfir.runtime.spec import Graph

# rocket, once the first of these, is a held-out photo now (calibration_photos() would drop it anyway)
CALIBRATION_PHOTOS = ("motorcycle_left", "hubble_deep_field", "immunohistochemistry", "retina",
                      "camera", "coins", "brick")
CROPS_PER_PHOTO = 2
QUANTIZED_OPS = ("Conv",)


def calibration_photos() -> list[str]:
    from mmfir.measure.photos import TRAIN_PHOTOS

    return [p for p in CALIBRATION_PHOTOS if p in TRAIN_PHOTOS]


def calibration_pixels(multiple: int, seed: int = 0) -> np.ndarray:
    """[N, 3, 6m, 8m] crops in [0, 1] of the calibration photos, at seeded random positions."""
    from mmfir.measure.photos import load_photo

    h, w, rng, crops = 6 * multiple, 8 * multiple, np.random.default_rng(seed), []
    for name in calibration_photos():
        photo = load_photo(name)
        for _ in range(CROPS_PER_PHOTO):
            y, x = rng.integers(0, photo.shape[0] - h + 1), rng.integers(0, photo.shape[1] - w + 1)
            crops.append(photo[y:y + h, x:x + w].transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(crops))


def calibration_feeds(model, graph: Graph) -> dict[str, list[dict[str, np.ndarray]]]:
    """Per network, one feed per calibration crop (batch 1), taken from the torch graph's values."""
    from .validate import torch_values

    cases = torch_values(model, graph, (pixels[None] for pixels in calibration_pixels(graph.multiple)))
    return {n: [graph.feeds(n, values) for values in cases] for n in graph.order}


class FeedReader:
    """onnxruntime's CalibrationDataReader over a list of feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._feeds = iter(feeds)

    def get_next(self):
        return next(self._feeds, None)


def kept_fp32(model) -> list[str]:
    """Names of the nodes left FP32 among the quantizable ones: the first and last Conv, the channel means."""
    from .fp16 import channel_mean_convs

    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    means = channel_mean_convs(model.graph)
    ends = [c for c in (convs[:1] + convs[-1:]) if c not in means]
    return sorted(set(means) | set(ends))


def quantize_graph(src: Path, dst: Path, feeds: list[dict[str, np.ndarray]]) -> dict:
    """Write the INT8 QDQ version of ``src``; returns what was quantized and what was kept FP32."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    model = onnx.load(str(src))
    excluded = kept_fp32(model)
    root, level = logging.getLogger(), logging.getLogger().level
    root.setLevel(logging.ERROR)  # the quantizer logs advice on the root logger; our progress says what runs
    try:
        quantize_static(str(src), str(dst), FeedReader(feeds), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=list(QUANTIZED_OPS), nodes_to_exclude=excluded,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": True})
    except Exception as err:  # the quantizer's many error types: one line, cause kept for --verbose
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ExportError(f"INT8 quantization of {src.name} failed: {type(err).__name__}: {first}") from err
    finally:
        root.setLevel(level)
    quantizable = sum(1 for n in model.graph.node if n.op_type in QUANTIZED_OPS)
    return {"quantized_nodes": quantizable - len(excluded), "kept_fp32_nodes": len(excluded)}


def settings() -> dict:
    """What the manifest records about the calibration and the quantizer."""
    import importlib.metadata

    return {"format": "QDQ", "tool": f"onnxruntime.quantization {importlib.metadata.version('onnxruntime')}",
            "weights": "int8 symmetric, per output channel", "activations": "int8 symmetric (zero point 0), MinMax calibration",
            "quantized_ops": list(QUANTIZED_OPS),
            "calibration": {"photos": calibration_photos(), "crops_per_photo": CROPS_PER_PHOTO,
                            "crop": "6 x 8 restorer multiples, seeded random positions (seed 0)",
                            "source": "scikit-image training photos (never the validation photos)"}}
