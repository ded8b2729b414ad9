"""`mmfir compare` on the tiny bundle: torch vs ort-cpu passes, a perturbed graph fails by name, no-torch path."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from mmfir.cli.main import main
from mmfir.runtime.errors import MmfirError
from mmfir.runtime.spec import Precision
from mmfir.measure.targets import Target, parse_target, parse_targets

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def small_photos(tmp_path_factory, photos):
    """Two real photo crops as PNG files (small, so torch runs fast)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("photos")
    for name, (h, w) in (("astronaut", (96, 128)), ("coffee", (80, 112))):
        img = (photos[name][:h, -w:] * 255).round().astype(np.uint8)
        Image.fromarray(img).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_model):
    from mmfir.models import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(tiny_model, path)
    return path


def perturbed_copy(bundle, dest):
    """A copy of the bundle whose restorer has one conv weight changed (manifest hashes updated)."""
    import onnx
    from onnx import numpy_helper

    from mmfir.runtime.bundle import Bundle
    from mmfir.runtime.files import sha256_file

    shutil.copytree(bundle, dest)
    path = dest / "restorer.onnx"
    model = onnx.load(str(path))
    init = next(i for i in model.graph.initializer if len(i.dims) == 4)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + np.float32(0.05), init.name))
    onnx.save(model, str(path))
    opened = Bundle.open(dest)
    files = dict(opened.manifest["files"])
    files["restorer.onnx"] = {**files["restorer.onnx"], "sha256": sha256_file(path), "bytes": path.stat().st_size}
    opened.update_manifest(files=files)
    return dest


def test_parse_targets():
    assert parse_target("ov-cpu-bf16") == Target("ov-cpu", Precision.BF16)
    assert parse_target("ort-cpu/fp16") == Target("ort-cpu", Precision.FP16)
    assert parse_targets("ort-cpu, ort-cpu,trt") == [Target("ort-cpu"), Target("trt")]
    with pytest.raises(MmfirError, match="unknown backend 'tpu'"):
        parse_target("tpu")


def test_torch_vs_ort_fp32_passes(tiny_bundle, small_photos, checkpoint, tmp_path, capsys):
    out = tmp_path / "cmp.json"
    rc = main(["compare", str(tiny_bundle), "--backends", "ort-cpu", "--images", str(small_photos),
               "--checkpoint", str(checkpoint), "--end-to-end", "--json", str(out)])
    assert rc == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["passed"] and report["reference"] == "torch/fp32" and report["reference_is_torch"]
    checks = report["results"][0]["checks"]
    metrics = {(c["network"], c["output"], c["metric"]) for c in checks}
    assert {("encoder", "content", "cosine"), ("encoder", "degradation_logits", "class_agreement"),
            ("restorer", "restored", "max_abs"), ("restorer", "restored", "psnr_db"),
            ("restorer", "restored", "ssim"), ("end_to_end", "restored", "psnr_db")} <= metrics
    restored = [c for c in checks if c["network"] == "restorer" and c["metric"] == "max_abs"]
    assert len(restored) == 2 and all(c["value"] <= 1e-4 for c in restored)
    table = capsys.readouterr().out
    assert "ort-cpu/fp32  restorer.restored" in table and "FAIL" not in table


def test_perturbed_candidate_fails_naming_the_check(tiny_bundle, small_photos, checkpoint, tmp_path, capsys):
    bad = perturbed_copy(tiny_bundle, tmp_path / "bad")
    out = tmp_path / "cmp.json"
    rc = main(["compare", str(bad), "--backends", "ort-cpu", "--images", str(small_photos),
               "--checkpoint", str(checkpoint), "--json", str(out)])
    captured = capsys.readouterr()
    assert rc == 3
    line = next(ln for ln in captured.err.splitlines() if "restorer.restored" in ln and "max_abs" in ln)
    assert "FAILED" in line and "bound <= 0.0001" in line and "ort-cpu/fp32 vs torch/fp32" in line
    value = float(line.split("max_abs=")[1].split()[0])
    assert value > 1e-4
    assert "FAIL max_abs" in captured.out
    assert json.loads(out.read_text())["passed"] is False


NO_TORCH = """
import sys
sys.modules['torch'] = None
sys.modules['open_clip'] = None
from mmfir.cli.main import main
rc = main(sys.argv[1:])
assert 'torch' not in [m for m, v in sys.modules.items() if v is not None], 'torch was imported'
sys.exit(rc)
"""


def run_without_torch(*args):
    return subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, timeout=300)


def test_without_torch_compares_against_chosen_reference(tiny_bundle, small_photos, tmp_path):
    out = tmp_path / "cmp.json"
    proc = run_without_torch("compare", str(tiny_bundle), "--reference", "ort-cpu", "--backends", "ort-cpu-fp16",
                             "--images", str(small_photos), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "NOT PyTorch" in proc.stdout and "ort-cpu/fp16" in proc.stdout
    report = json.loads(out.read_text())
    assert report["reference"] == "ort-cpu/fp32" and not report["reference_is_torch"] and report["passed"]

    proc = run_without_torch("compare", str(tiny_bundle), "--backends", "ort-cpu", "--images", str(small_photos))
    assert proc.returncode == 2
    assert "reference backend torch is not available" in proc.stderr and "--reference ort-cpu" in proc.stderr
