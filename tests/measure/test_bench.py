"""`mmfir bench` on the tiny bundle at a small size: JSON schema, ratios, FLOPs, peak memory, plot."""
from __future__ import annotations

import json

import pytest

from mmfir.cli.main import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_model):
    from mmfir.models import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(tiny_model, path)
    return path


@pytest.mark.slow
def test_bench_writes_json_with_ratios_and_a_plot(tiny_bundle, checkpoint, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out, plot = tmp_path / "bench.json", tmp_path / "bench.png"
    rc = main(["bench", str(tiny_bundle), "--backends", "torch,ort-cpu", "--sizes", "64,96", "--batch", "1,2",
               "--warmup", "1", "--iters", "2", "--checkpoint", str(checkpoint), "--json", str(out),
               "--plot", str(plot)])
    assert rc == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["schema"] == "mmfir-bench/1"
    assert report["environment"] == {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}
    assert report["machine"]["cores"] >= 1 and report["machine"]["cpu"]
    assert report["peak"]["fp32"]["gflops"] > 0
    rows = report["results"]
    assert len(rows) == 2 * 2 * 2 * 3  # backends x sizes x batches x networks
    for r in rows:
        assert r["p50_ms"] > 0 and r["p95_ms"] >= r["p50_ms"] * 0.999 and r["throughput_ips"] > 0
        assert r["flops"] > 0 and 0 < r["peak_fraction"] < 5
        assert r["speedup_vs_torch"] > 0
        if r["backend"] == "torch":
            assert r["speedup_vs_torch"] == pytest.approx(1.0)
    restorer = {(r["size"], r["batch"]): r["flops"] for r in rows if r["network"] == "restorer"}
    assert restorer[(96, 1)] > restorer[(64, 1)] and restorer[(64, 2)] == 2 * restorer[(64, 1)]
    for label in ("torch/fp32", "ort-cpu/fp32"):
        assert report["backends"][label]["peak_rss_mb"] > 50 and "error" not in report["backends"][label]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out
    assert "MALLOC_MMAP_MAX_=0" in table and "x torch" in table


def test_bench_rejects_bad_sizes(tiny_bundle, capsys):
    assert main(["bench", str(tiny_bundle), "--sizes", "512,abc"]) == 2
    assert "--sizes takes comma-separated integers" in capsys.readouterr().err


def test_failed_backend_is_reported_not_raised(tiny_bundle, tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", str(tiny_bundle), "--backends", "ort-cpu-bf16", "--sizes", "64", "--iters", "1",
               "--warmup", "1", "--networks", "restorer", "--json", str(out)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "FAILED ort-cpu/bf16" in err and "does not run bf16" in err
    assert json.loads(out.read_text())["results"] == []
