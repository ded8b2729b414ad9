"""INT8: QDQ graphs calibrated on real photos, validated under the INT8 contract, run by ort-cpu and ov-cpu."""
from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import pytest

from support import requires_torch

pytestmark = requires_torch


@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory):
    """The shipped (trained) tiny model with FP32 and INT8 graphs: real weights, real activation ranges."""
    from mmfir.cli.default_bundle import shipped_checkpoint
    from mmfir.export import export_bundle

    return export_bundle(shipped_checkpoint(), tmp_path_factory.mktemp("int8") / "bundle", fp16=False, int8=True,
                         progress=False)


@pytest.mark.slow
def test_int8_graphs_are_validated_and_their_calibration_recorded(int8_bundle):
    from mmfir.export.validate import PHOTOS
    from mmfir.runtime.spec import Precision

    assert int8_bundle.precisions() == [Precision.FP32, Precision.INT8]
    record = int8_bundle.manifest["int8"]
    assert record["format"] == "QDQ" and record["quantized_ops"] == ["Conv"]
    assert record["networks"]["restorer"]["quantized_nodes"] > 10 and record["networks"]["encoder"]["quantized_nodes"] == 0
    photos = record["calibration"]["photos"]
    assert len(photos) >= 6 and not set(photos) & set(PHOTOS)  # never calibrated on the validation photos
    checks = int8_bundle.manifest["validation"]["checks"]
    for pair in ("ort-cpu/int8", *(["ov-cpu/int8"] if importlib.util.find_spec("openvino") else [])):
        mine = [c for c in checks if c["pair"].startswith(pair)]
        assert {c["network"] for c in mine} == {"encoder", "restorer"} and all(c["passed"] for c in mine), pair
        assert any(c["metric"] == "psnr_db" and c["bound"] == 40.0 for c in mine)
        assert any(c["metric"] == "cosine" and c["bound"] == 0.999 for c in mine)


def test_int8_graph_is_qdq_around_the_heavy_ops_only(int8_bundle):
    model = onnx.load(str(int8_bundle.onnx_path("restorer", "int8")))
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    produced_by = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:  # the normalisation's reductions and roots read FP32 values, not dequantized ones
        if node.op_type in ("Sqrt", "ReduceMean", "Softmax"):
            src = produced_by.get(node.input[0])
            assert src is None or src.op_type != "DequantizeLinear", node.name
        if node.op_type in ("MatMul", "Gemm"):  # the token path stays FP32 (OpenVINO: no reorders around it)
            assert all(produced_by.get(i) is None or produced_by[i].op_type != "DequantizeLinear"
                       for i in node.input), node.name
    assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for v in model.graph.input)


def test_int8_graph_is_symmetric_everywhere(int8_bundle):
    """Zero point 0 on every QuantizeLinear/DequantizeLinear: TensorRT's explicit quantization takes nothing
    else, and OpenVINO on AMX runs a nonzero activation zero point as a separate pass (export/quantize.py)."""
    from onnx import numpy_helper

    model = onnx.load(str(int8_bundle.onnx_path("restorer", "int8")))
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(qdq) > 20
    for node in qdq:
        assert len(node.input) == 3 and node.input[2] in consts, node.name
        zero = consts[node.input[2]]
        assert zero.dtype in (np.int8, np.int32) and not zero.any(), (node.name, zero)  # int32: biases


@pytest.mark.parametrize("backend", ["ort-cpu", "ov-cpu"])
def test_backends_restore_with_int8_within_the_contract(int8_bundle, photos, backend):
    from mmfir.measure.metrics import psnr
    from mmfir.runtime.backends import backend_status, create_backend
    from mmfir.runtime.image_io import from_array
    from mmfir.runtime.pipeline import Pipeline

    if not backend_status(backend, "int8")[0]:
        pytest.skip(backend_status(backend, "int8")[1])
    image = from_array(photos["chelsea"][:192, :256])
    with create_backend(backend, int8_bundle, "int8") as b8, create_backend("ort-cpu", int8_bundle) as b32:
        got, ref = Pipeline(b8, tile=0).restore([image])[0], Pipeline(b32, tile=0).restore([image])[0]
    assert got.label == ref.label
    assert psnr(np.clip(ref.restored, 0, 1), np.clip(got.restored, 0, 1)) >= 40.0


@pytest.mark.trt
def test_trt_int8_engines_meet_the_contract(int8_bundle, photos, tmp_path):
    """Where TensorRT and a GPU exist: INT8 engines built from the QDQ graphs, against torch-free ORT FP32."""
    import shutil

    from mmfir.runtime.backends import backend_status, create_backend
    from mmfir.runtime.bundle import Bundle
    from mmfir.runtime.image_io import from_array
    from mmfir.runtime.pipeline import Pipeline
    from mmfir.measure.metrics import psnr

    ok, why = backend_status("trt", "int8")
    if not ok:
        pytest.skip(why)
    shutil.copytree(int8_bundle.root, tmp_path / "bundle")  # engines go into a copy
    bundle = Bundle.open(tmp_path / "bundle")
    image = from_array(photos["chelsea"][:192, :256])
    with create_backend("trt", bundle, "int8") as trt8, create_backend("ort-cpu", bundle) as ref32:
        got, ref = Pipeline(trt8, tile=0).restore([image])[0], Pipeline(ref32, tile=0).restore([image])[0]
    assert got.label == ref.label
    assert psnr(np.clip(ref.restored, 0, 1), np.clip(got.restored, 0, 1)) >= 40.0
    assert bundle.manifest["engines"]["restorer"]["int8"]["key"]["onnx_file"] == "restorer.int8.onnx"


def test_int8_targets_are_skipped_on_bundles_without_int8_graphs(tiny_bundle):
    from mmfir.measure.compare import candidate_targets
    from mmfir.measure.targets import Target
    from mmfir.runtime.bundle import Bundle

    chosen, skipped = candidate_targets(None, Target("torch"), Bundle.open(tiny_bundle))
    assert all(t.precision.value != "int8" for t in chosen)
    assert "re-export with --int8" in skipped["ort-cpu/int8"]
