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


@pytest.mark.parametrize("options, says", [
    (["--tile", "7"], "--tile 7 is too small: tiles must be at least 256 pixels"),
    (["--tile", "-5"], "--tile must be 0 (whole image) or a positive tile size, got -5"),
    (["--tile", "100", "--overlap", "60"], "--tile 100 is too small: tiles must be at least 120 pixels"),
    (["--overlap", "-1"], "--overlap must be 0 or more pixels"),
    (["--batch", "0"], "--batch must be at least 1"),
])
def test_tile_settings_that_cannot_work_are_refused_at_once(bundle, inputs, tmp_path, options, says):
    run = mmfir("restore", str(inputs / "good.png"), "-o", str(tmp_path / "o"), "--bundle", str(bundle.root),
                "--backend", "ort-cpu", *options)
    assert run.returncode == 2, run.stderr
    (line,) = error_lines(run.stderr)
    assert says in line and "Traceback" not in run.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.mark.slow
def test_sigterm_leaves_only_whole_outputs(bundle, photos, tmp_path):
    """SIGTERM (docker stop, systemd) mid-batch: exit 130, say what was done, no temporary file left."""
    import signal
    import time

    folder = tmp_path / "many"
    folder.mkdir()
    big = (np.tile(photos["coffee"], (2, 2, 1))[:768, :768] * 255).round().astype(np.uint8)
    for i in range(24):
        Image.fromarray(np.roll(big, i, axis=1)).save(folder / f"img{i:02d}.png")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "mmfir.cli", "restore", str(folder), "-o", str(out), "--bundle",
                             str(bundle.root), "--backend", "ort-cpu", "--batch", "1", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out.is_dir() and any(p.suffix == ".png" for p in out.iterdir())):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    left = sorted(p.name for p in out.iterdir())
    assert f"interrupted after writing {len(left)} of 24 files" in stderr  # says what was done
    assert left and all(name.endswith(".png") and not name.startswith(".") for name in left), left
    assert len(left) < 24
    for name in left:  # every output that exists is a whole image
        with Image.open(out / name) as im:
            im.load()
            assert im.size == (768, 768)


def test_overlapped_io_writes_what_serial_io_writes(bundle, inputs, tmp_path):
    """Decode/write in the I/O pool (default) and one after the other (--io-workers 0): same files, same bytes."""
    runs = {}
    for workers in ("2", "0"):
        out = tmp_path / f"io{workers}"
        run = mmfir("restore", str(inputs), "-o", str(out), "--bundle", str(bundle.root), "--backend", "ort-cpu",
                    "--batch", "1", "--io-workers", workers, "--json")
        assert run.returncode == 1, run.stderr  # the bad files fail alone in both
        runs[workers] = ({p.name: p.read_bytes() for p in out.iterdir()}, [r["input"] for r in json.loads(run.stdout)])
    assert runs["2"] == runs["0"] and len(runs["2"][0]) == 3
