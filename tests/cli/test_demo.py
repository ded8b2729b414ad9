"""`mmfir demo` and `mmfir evaluate` end to end (real bundle of the shipped model, ORT CPU)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from support import requires_torch

pytestmark = requires_torch  # the first use exports the shipped checkpoint


@pytest.fixture(scope="module")
def shipped_bundle():
    from mmfir.cli.default_bundle import default_bundle

    return default_bundle(progress=False)


@pytest.mark.slow
def test_demo_cli_writes_images_and_table_without_torch(shipped_bundle, tmp_path):
    pytest.importorskip("skimage")
    out = tmp_path / "demo"
    code = ("import sys; from mmfir.cli.main import main; rc = main(['demo', '--out', sys.argv[1], '--photos', "
            "'coffee']); "
            "assert 'torch' not in sys.modules, 'demo imported torch'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "contact_sheet.png" in pngs and len(pngs) == 6 * 3 + 1  # 6 degradations x 3 strengths
    with Image.open(out / "coffee_hazy_s50.png") as im:
        assert im.size == (3 * 600 + 8, 400)
    assert "mean" in proc.stdout and "PSNR in" in proc.stdout and "hazy" in proc.stdout
    scores = json.loads((out / "scores.json").read_text())
    assert len(scores["cases"]) == 18 and scores["summary"][-1]["degradation"] == "mean"
    assert sorted({c["strength"] for c in scores["cases"]}) == [0.25, 0.5, 0.75]


def test_evaluate_on_a_folder_skips_bad_files(shipped_bundle, tmp_path, photos, capsys):
    from mmfir.cli.main import main

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray((photos["coffee"][:96, :128] * 255).astype(np.uint8)).save(folder / "coffee.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    assert main(["evaluate", "--bundle", str(shipped_bundle.root), "--images", str(folder), "--strength", "0.5",
                 "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert len(result["cases"]) == 6 and {c["photo"] for c in result["cases"]} == {"coffee.png"}
    assert "broken.jpg" in captured.err


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    from mmfir.cli.main import main

    assert main(["evaluate", "--bundle", str(tmp_path / "nope"), "--images", str(tmp_path)]) == 2
    assert main(["evaluate", "--images", str(tmp_path / "missing")]) == 2
    assert main(["demo", "--bundle", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no such folder" in err and "bundle not found" in err and "Traceback" not in err
