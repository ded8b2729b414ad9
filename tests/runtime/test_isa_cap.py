"""MMFIR_CPU_ISA=avx2: an AVX-512 machine measured as an AVX2 one (runtime/cpu.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mmfir.runtime import cpu
from mmfir.runtime.errors import UsageError


@pytest.fixture
def no_cap(monkeypatch):
    for key in (cpu.ISA_ENV, "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_cap_hides_flags_above_avx2(no_cap):
    no_cap.setattr(cpu, "_all_flags", lambda: frozenset({"sse4_2", "avx2", "fma", "avx512f", "avx512_bf16",
                                                         "avx512_vnni", "amx_tile", "avx_vnni"}))
    assert cpu.isa_cap() is None and cpu.bf16_support()[0]
    no_cap.setenv(cpu.ISA_ENV, "AVX2")
    assert cpu.isa_cap() == "avx2"
    assert cpu.cpu_flags() == {"sse4_2", "avx2", "fma"}
    assert cpu.reported_features() == ["avx2", "fma"]
    assert cpu.hidden_features() == ["avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile"]
    ok, why = cpu.bf16_support()
    assert not ok and "MMFIR_CPU_ISA=avx2" in why
    assert cpu.isa_cap_env()["ONEDNN_MAX_CPU_ISA"] == "AVX2" and cpu.isa_cap_env()["ATEN_CPU_CAPABILITY"] == "avx2"


def test_onednn_cap_alone_counts(no_cap):
    """OpenVINO under ONEDNN_MAX_CPU_ISA=AVX2 cannot compile BF16, so the BF16 decision must see that cap."""
    no_cap.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert cpu.isa_cap() == "avx2" and not cpu.bf16_support()[0]
    assert cpu.isa_cap_env() == {}  # the user's own cap is not extended to the other libraries
    no_cap.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    assert cpu.isa_cap() is None


def test_unknown_cap_is_a_usage_error(no_cap):
    no_cap.setenv(cpu.ISA_ENV, "avx3")
    with pytest.raises(UsageError, match="avx3"):
        cpu.isa_cap()
    assert cpu.apply_isa_cap(strict=False) == {}


def test_cli_reports_unknown_cap(no_cap):
    proc = subprocess.run([sys.executable, "-m", "mmfir.cli.main", "info"], capture_output=True, text=True,
                          env=dict(os.environ, MMFIR_CPU_ISA="sse9"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "MMFIR_CPU_ISA='sse9' is not a cap" in proc.stderr.strip().splitlines()[-1]


PROBE = """
import collections, json, sys
import mmfir.runtime  # applies the cap before torch and OpenVINO start
from mmfir.runtime.backends.ov import compile_onnx
from mmfir.runtime.spec import Precision
from mmfir.measure.bench import worker_env
import torch
request = compile_onnx(sys.argv[1], Precision.FP32)
kernels = collections.Counter((op.get_rt_info()["layerType"].astype(str), op.get_rt_info()["primitiveType"].astype(str))
                              for op in request.get_compiled_model().get_runtime_model().get_ordered_ops())
print(json.dumps({"torch": torch.backends.cpu.get_cpu_capability(), "kernels": [list(k) for k in kernels],
                  "worker_onednn": worker_env().get("ONEDNN_MAX_CPU_ISA")}))
"""


@pytest.mark.openvino
@pytest.mark.skipif("avx512f" not in cpu._all_flags(), reason="this CPU has no AVX-512: nothing to cap")
def test_capped_process_runs_avx2_kernels(tiny_bundle, no_cap):
    pytest.importorskip("openvino", reason="needs mmfir[openvino]")
    env = dict(os.environ, MMFIR_CPU_ISA="avx2")
    proc = subprocess.run([sys.executable, "-c", PROBE, str(tiny_bundle / "restorer.onnx")], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["torch"] == "AVX2" and out["worker_onednn"] == "AVX2"
    convs = [kernel for layer, kernel in out["kernels"] if layer in ("Convolution", "GroupConvolution")]
    assert convs and all("avx2" in k for k in convs), convs
    # OpenVINO's own Interpolate kernel reads CPUID itself; everything else stays within AVX2
    others = [k for layer, k in out["kernels"] if "avx512" in k and layer != "Interpolate"]
    assert not others, others
