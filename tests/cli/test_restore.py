"""`mmfir restore` in a subprocess: bad inputs, exit codes, one-line errors, JSON, no torch."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mmfir.runtime.bundle import Bundle


@pytest.fixture(scope="module")
def bundle(tiny_bundle) -> Bundle:
    return Bundle.open(tiny_bundle)


def mmfir(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmfir.cli", *args], capture_output=True, text=True,
                          timeout=300)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error:" in line]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, photos):
    folder = tmp_path_factory.mktemp("inputs")
    astro = (photos["astronaut"][:96, :128] * 255).round().astype(np.uint8)
    Image.fromarray(astro).save(folder / "good.png")
    Image.fromarray(astro).save(folder / "good_too.jpg")
    alpha = np.full(astro.shape[:2], 77, np.uint8)
    Image.fromarray(np.dstack([astro, alpha])).save(folder / "alpha.png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("not an image")
    data = (folder / "good.png").read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    return folder


BAD = ("empty.png", "text.jpg", "truncated.png")


def test_bad_files_fail_alone(bundle, inputs, tmp_path):
    out = tmp_path / "out"
    run = mmfir("restore", str(inputs), "-o", str(out), "--bundle", str(bundle.root), "--backend", "ort-cpu")
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    errors = error_lines(run.stderr)
    assert len(errors) == len(BAD)
    for name in BAD:
        assert sum(name in line for line in errors) == 1
    assert sorted(p.name for p in out.iterdir()) == ["alpha.png", "good.png", "good_too.jpg"]
    assert Image.open(out / "alpha.png").mode == "RGBA"
    assert "good_too.jpg" in run.stdout and "FAILED" in run.stdout  # the summary table


def test_json_output_and_no_torch(bundle, inputs, tmp_path):
    code = ("import sys; from mmfir.cli.main import main; "
            f"rc = main(['restore', {str(inputs / 'good.png')!r}, {str(inputs / 'empty.png')!r}, "
            f"'-o', {str(tmp_path)!r}, '--bundle', {str(bundle.root)!r}, '--backend', 'ort-cpu', '--json']); "
            "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr
    results = json.loads(run.stdout)
    good, bad = results
    assert good["ok"] and good["degradation"] in bundle.class_names and 0 < good["confidence"] <= 1
    assert set(good["timings"]) >= {"decode", "preprocess", "encoder", "restorer", "write"}
    assert not bad["ok"] and "empty" in bad["error"]


def test_never_overwrites_inputs(bundle, inputs, tmp_path):
    folder = tmp_path / "in_place"
    shutil.copytree(inputs, folder)
    before = (folder / "good.png").read_bytes()
    run = mmfir("restore", str(folder / "good.png"), "-o", str(folder), "--bundle", str(bundle.root),
                "--backend", "ort-cpu")
    assert run.returncode == 1 and "overwrite an input" in run.stderr
    assert (folder / "good.png").read_bytes() == before


def test_usage_and_bundle_errors_exit_2(bundle, inputs, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    run = mmfir("restore", str(inputs / "good.png"), "-o", str(blocker / "sub"), "--bundle", str(bundle.root))
    assert run.returncode == 2 and len(error_lines(run.stderr)) == 1 and "output folder" in run.stderr
    tampered = tmp_path / "tampered"
    shutil.copytree(bundle.root, tampered)
    with open(tampered / "encoder.onnx", "ab") as f:
        f.write(b"\0")
    run = mmfir("restore", str(inputs / "good.png"), "-o", str(tmp_path / "o"), "--bundle", str(tampered),
                "--backend", "ort-cpu", "--max-pixels", "100")
    assert run.returncode == 1 and "more than the limit" in run.stderr  # refused before any network runs
    run = mmfir("restore", str(inputs / "good.png"), "-o", str(tmp_path / "o"), "--bundle", str(tampered),
                "--backend", "ort-cpu")
    assert run.returncode == 2 and "SHA-256" in run.stderr and "Traceback" not in run.stderr
