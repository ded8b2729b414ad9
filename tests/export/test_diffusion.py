"""DA-CLIP's diffusion restorer as a bundle network: import, export, validation, and the sampling loop.

- A diffusion model (a tiny encoder + the U-Net of the DA-CLIP reference) exported FP32 + FP16 and
  validated; its ONNX U-Net against DA-CLIP's own ConditionalUNet outputs (tests/data/sde_unet_ref.npz,
  see tests/models/test_sde_unet.py) at three time steps on an odd-sized input, padded the way the
  runtime pads. The runtime samples it: seeds repeat, a replayed noise source gives exactly the states
  of IRSDE driven by the ONNX graph directly, and tiling draws the noise for the whole image.
- End to end: the runtime's 100- and 20-step samples (ort-cpu, ov-cpu) against DA-CLIP's own IRSDE
  driving its own ConditionalUNet with the same weights, contexts and noise (tests/data/sample_ref.npz).
- `import daclip --restorer` on a tiny DA-CLIP encoder (tests/data/daclip_tiny.pt) plus a U-Net file in
  DA-CLIP's layout (saved as DA-CLIP's training saves it).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from mmfir.models.sde_unet import SDEUNet, SDEUNetConfig  # noqa: E402
from mmfir.runtime.backends.base import create_backend  # noqa: E402
from mmfir.runtime.backends.ort import ort_session  # noqa: E402
from mmfir.runtime.errors import UsageError  # noqa: E402
from mmfir.runtime.pipeline import Pipeline  # noqa: E402
from mmfir.runtime.sde import IRSDE, SDESettings  # noqa: E402
from mmfir.runtime.spec import (CONTENT, COND, DEGRADATION, DENOISER, ENCODER, IMAGE_CONTEXT, NOISE, SAMPLED,  # noqa: E402
                                TEXT_CONTEXT, TIME, XT, denoiser_spec, output_ref)
from mmfir.runtime.tiling import pad_to_multiple  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"
REF = np.load(DATA / "sde_unet_ref.npz")


def seeded(shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    sys.path.insert(0, str(DATA))
    try:
        from sde_unet_weights import seeded_weights
    finally:
        sys.path.remove(str(DATA))
    return seeded_weights(shapes)


def seeded_unet(cfg: SDEUNetConfig) -> SDEUNet:
    net = SDEUNet(cfg).eval()
    weights = seeded({k: tuple(v.shape) for k, v in net.state_dict().items()})
    net.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    return net


def reference_unet() -> SDEUNet:
    """The U-Net of the DA-CLIP reference, with its seeded weights."""
    settings = json.loads(str(REF["settings"]))
    return seeded_unet(SDEUNetConfig(**{**settings, "ch_mult": tuple(settings["ch_mult"])}))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A diffusion model (tiny encoder with 32-d embeddings + the reference U-Net) exported FP32 + FP16."""
    from mmfir.export import export_bundle
    from mmfir.models import build_model, config_from_dict, load_config, save_checkpoint

    unet = reference_unet()
    cfg = load_config("tiny").to_dict()
    cfg["encoder"]["embed_dim"] = unet.cfg.context_dim
    cfg["diffusion"] = {"unet": {**vars(unet.cfg), "ch_mult": list(unet.cfg.ch_mult)}, "sde": {"T": 100}}
    model = build_model(config_from_dict({**cfg, "name": "tiny-diffusion"}), seed=0)
    model.denoiser.load_state_dict(unet.state_dict())
    folder = tmp_path_factory.mktemp("diffusion")
    return export_bundle(save_checkpoint(model, folder / "model.safetensors"), folder / "bundle", progress=False)


@pytest.mark.parametrize("t", [1, 37, 100])
def test_exported_unet_matches_daclip(bundle, t):
    h, w = REF["xt"].shape[-2:]  # 37 x 45: DA-CLIP pads inside its forward, the runtime before the graph
    feeds = {XT: pad_to_multiple(REF["xt"], 16), COND: pad_to_multiple(REF["cond"], 16),
             TIME: np.array([t], np.float32), TEXT_CONTEXT: REF["text_context"], IMAGE_CONTEXT: REF["image_context"]}
    ref = REF[f"noise_t{t}"]
    for precision, bound in (("fp32", 1e-4), ("fp16", 1e-2)):
        noise = ort_session(bundle.onnx_path(DENOISER, precision)).run([NOISE], feeds)[0][..., :h, :w]
        assert np.linalg.norm(noise - ref) / np.linalg.norm(ref) < bound, precision


def test_fp16_denoiser_keeps_normalisations_and_softmax_fp32(bundle):
    """Every normalisation and softmax of the FP16 U-Net reads FP32: a Cast up, or another FP32-kept op."""
    import onnx

    from mmfir.export.fp16 import FP32_OPS

    graph = onnx.load(str(bundle.onnx_path(DENOISER, "fp16"))).graph
    producer = {o: n for n in graph.node for o in n.output}
    kept = [n for n in graph.node if n.op_type in ("InstanceNormalization", "LayerNormalization", "Softmax")]
    assert {n.op_type for n in kept} >= {"InstanceNormalization", "Softmax"}
    for node in kept:
        src = producer[node.input[0]]
        ok = src.op_type in FP32_OPS or (src.op_type == "Cast" and
                                         next(a.i for a in src.attribute if a.name == "to") == onnx.TensorProto.FLOAT)
        assert ok, f"{node.op_type} {node.name} reads {src.op_type} {src.name}"


def test_bundle_declares_the_denoiser_and_the_sampler(bundle):
    graph = bundle.graph
    assert graph.order == (ENCODER, DENOISER) and graph.sampler == DENOISER and graph.restored == SAMPLED
    assert graph.sources(DENOISER)[TEXT_CONTEXT] == output_ref(ENCODER, DEGRADATION)
    assert graph.sources(DENOISER)[IMAGE_CONTEXT] == output_ref(ENCODER, CONTENT)
    assert bundle.sde_settings == SDESettings()
    checks = [c for c in bundle.manifest["validation"]["checks"] if c["network"] == DENOISER]
    assert bundle.manifest["valid"] and {c["pair"].split()[0] for c in checks} >= {"ort-cpu/fp32", "ort-cpu/fp16"}
    assert any(c["metric"] == "rel_l2" and c["passed"] for c in checks)


def test_import_daclip_with_its_restorer(tmp_path):
    """`import daclip --restorer`: DA-CLIP's encoder and U-Net files into one checkpoint with the SDE settings."""
    from mmfir.models import load_checkpoint
    from mmfir.models.daclip import import_daclip
    from mmfir.runtime.errors import CheckpointError

    unet = seeded_unet(SDEUNetConfig(nf=32, ch_mult=(1, 2), context_dim=16))  # the tiny encoder's width
    torch.save({"module." + k: v for k, v in unet.state_dict().items()}, tmp_path / "universal-ir.pth")
    ckpt = import_daclip(DATA / "daclip_tiny.pt", tmp_path / "daclip.safetensors", restorer=tmp_path / "universal-ir.pth")
    model, meta = load_checkpoint(ckpt)
    assert model.cfg.diffusion.unet == unet.cfg and model.cfg.diffusion.sde == SDESettings()
    assert meta["restorer_untrained"] == "false" and meta["restorer_file"] == "universal-ir.pth"
    assert not hasattr(model, "restorer")
    for k, v in unet.state_dict().items():  # the U-Net's weights, key for key
        assert torch.equal(model.denoiser.state_dict()[k], v)
    torch.save(reference_unet().state_dict(), tmp_path / "other.pth")  # 32-d contexts: not this encoder's
    with pytest.raises(CheckpointError, match="32-d embeddings but .* 16-d"):
        import_daclip(DATA / "daclip_tiny.pt", tmp_path / "x.safetensors", restorer=tmp_path / "other.pth")
    assert not (tmp_path / "x.safetensors").exists()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from mmfir.measure.photos import load_photo

    return (load_photo("chelsea")[60:108, 80:144] * 255).round().astype(np.uint8)  # 48 x 64


def test_sampling_is_seeded_and_replays_irsde_on_the_graph(bundle, photo):
    backend = create_backend("ort-cpu", bundle, "fp32")
    run = lambda **kw: Pipeline(backend, tile=0, steps=4, **kw).restore([photo])[0].restored  # noqa: E731
    first = run(seed=5)
    assert np.array_equal(first, run(seed=5)) and not np.allclose(first, run(seed=6))

    draws = [np.random.default_rng(i).standard_normal((1, 3, 48, 64), dtype=np.float32) for i in range(5)]
    replay = lambda seq: (lambda shape: next(seq))  # noqa: E731
    got = run(noise=replay(iter(draws)))

    # the same sample by hand: the encoder's embeddings, IRSDE, the denoiser graph called directly
    from mmfir.runtime.preprocess import ClipPreprocess
    from mmfir.runtime.image_io import from_array

    encoder = ort_session(bundle.onnx_path(ENCODER))
    names = [o.name for o in encoder.get_outputs()]
    emb = dict(zip(names, encoder.run(None, {"image": ClipPreprocess.from_bundle(bundle)(from_array(photo))[None]})))
    denoiser = ort_session(bundle.onnx_path(DENOISER))
    mu = np.moveaxis(photo.astype(np.float32) / 255, 2, 0)[None]
    sde = IRSDE(bundle.sde_settings, steps=4)
    times = []

    def predict(x, t):
        times.append(t)
        return denoiser.run([NOISE], {XT: x, COND: mu, TIME: np.array([t], np.float32),
                                      TEXT_CONTEXT: emb[DEGRADATION], IMAGE_CONTEXT: emb[CONTENT]})[0]

    want = sde.sample(mu, predict, noise=replay(iter(draws)))[0]
    assert times == [100.0, 75.0, 50.0, 25.0]  # DA-CLIP's sample_T: t * T / steps
    np.testing.assert_allclose(got, np.moveaxis(want, 0, 2), rtol=1e-5, atol=1e-5)


SAMPLE = np.load(DATA / "sample_ref.npz")


@pytest.mark.parametrize("steps", [100, 20])
@pytest.mark.parametrize("backend_name", ["ort-cpu", pytest.param("ov-cpu", marks=pytest.mark.openvino)])
def test_sample_matches_daclip_sampling_its_own_unet(bundle, backend_name, steps):
    """End to end against DA-CLIP: its IRSDE driving its ConditionalUNet (tests/data/make_sample_ref.py) vs the
    runtime's loop on the exported graph, same weights, contexts and noise, odd size (padded every step)."""
    if backend_name == "ov-cpu":
        pytest.importorskip("openvino", reason="needs mmfir[openvino]")
    from mmfir.runtime.image_io import from_array

    draws = np.random.default_rng(int(SAMPLE["seed"]))
    pipeline = Pipeline(create_backend(backend_name, bundle, "fp32"), tile=0, steps=steps,
                        noise=lambda shape: draws.standard_normal(shape, dtype=np.float32))
    states, real_step = [], pipeline.sde.step

    def recording_step(x, noise, t, mu, z):
        states.append(real_step(x, noise, t, mu, z))
        return states[-1]

    pipeline.sde.step = recording_step
    values = {output_ref(ENCODER, DEGRADATION): SAMPLE["text_context"],
              output_ref(ENCODER, CONTENT): SAMPLE["image_context"]}
    final = pipeline.run_sampler([from_array(SAMPLE["pixels"])], values)[0]
    want = SAMPLE[f"s{steps}_states"]  # after every quarter of the steps
    got = np.concatenate(states[steps // len(want) - 1::steps // len(want)])
    np.testing.assert_array_equal(np.moveaxis(final, 2, 0), got[-1])
    errors = [float(np.linalg.norm(g - w) / np.linalg.norm(w)) for g, w in zip(got, want)]
    assert max(errors) < 1e-3, errors  # random weights: states far outside [0, 1], so relative L2


def test_tiled_sampling_draws_noise_for_the_whole_image(bundle, photo):
    shapes = []

    def noise(shape):
        shapes.append(shape)
        return np.zeros(shape, np.float32)

    backend = create_backend("ort-cpu", bundle, "fp32")
    pipeline = Pipeline(backend, tile=32, overlap=8, steps=3, noise=noise)
    assert pipeline.is_tiled(48, 64)
    out = pipeline.restore([photo])[0].restored
    assert shapes == [(1, 3, 48, 64)] * 4 and out.shape == (48, 64, 3) and np.all(np.isfinite(out))


def test_sampling_options_need_a_diffusion_bundle(tiny_bundle, tmp_path):
    from mmfir.runtime.bundle import Bundle
    from mmfir.runtime.serving.repo import RepoOptions, write_repository

    backend = create_backend("ort-cpu", Bundle.open(tiny_bundle), "fp32")
    with pytest.raises(UsageError, match="diffusion"):
        Pipeline(backend, steps=10)
    with pytest.raises(UsageError, match="diffusion"):
        write_repository(tiny_bundle, tmp_path / "repo", RepoOptions(steps=10))
    assert not (tmp_path / "repo").exists()


def test_serve_repo_refuses_steps_beyond_t(bundle, tmp_path):
    """A repository whose sampler could not start (steps > T) is refused when written, not when served."""
    from mmfir.runtime.errors import ConfigError
    from mmfir.runtime.serving.repo import RepoOptions, write_repository

    with pytest.raises(ConfigError, match="between 1 and the model's T = 100, got 101"):
        write_repository(bundle, tmp_path / "repo", RepoOptions(steps=101))
    assert not (tmp_path / "repo").exists()


@pytest.mark.triton
def test_served_sample_equals_the_local_one(bundle, photo, tmp_path, start_triton):
    """`serve-repo` on a diffusion bundle: the denoiser model runs the whole loop; with --steps/--seed a real
    tritonserver returns what `Pipeline(tile=0, steps, seed)` does in process, at odd sizes too."""
    from mmfir.runtime.serving.client import restore_via_server
    from mmfir.runtime.serving.repo import RepoOptions, write_repository

    repo, notes = write_repository(bundle, tmp_path / "repo", RepoOptions(threads=1, steps=4, seed=7, max_side=256))
    assert notes == []
    config = (repo / DENOISER / "config.pbtxt").read_text()
    assert 'backend: "python"' in config and '"steps"' in config and "SamplerModel" in (
        repo / DENOISER / "1" / "model.py").read_text()
    images = [photo, np.ascontiguousarray(photo[:37, :45])]
    got = restore_via_server(start_triton(repo).http_url, images)
    with create_backend("ort-cpu", bundle, "fp32", threads=1) as backend:
        want = Pipeline(backend, tile=0, steps=4, seed=7).restore(images)
    for g, w in zip(got, want):
        assert g.restored.shape == w.restored.shape and g.label == w.label
        assert np.linalg.norm(g.restored - w.restored) / np.linalg.norm(w.restored) < 1e-5


def test_bench_times_the_whole_sample(bundle, tmp_path, capsys):
    """`mmfir bench --steps`: the end-to-end row is the whole sample (its steps recorded, the denoiser's
    FLOPs counted once per step), the denoiser row one call; --steps on a one-pass bundle is refused."""
    from mmfir.cli.main import main

    out = tmp_path / "bench.json"
    rc = main(["bench", str(bundle.root), "--backends", "ort-cpu", "--sizes", "32", "--warmup", "1", "--iters", "1",
               "--steps", "3", "--json", str(out)])
    assert rc == 0, capsys.readouterr().err
    rows = {r["network"]: r for r in json.loads(out.read_text())["results"]}
    assert rows["end_to_end"]["steps"] == 3 and "steps" not in rows[DENOISER]
    assert rows["end_to_end"]["flops"] == rows[ENCODER]["flops"] + 3 * rows[DENOISER]["flops"]
    assert "end_to_end (3 steps, " in capsys.readouterr().out


def test_bench_steps_need_a_diffusion_bundle(tiny_bundle, capsys):
    from mmfir.cli.main import main

    assert main(["bench", str(tiny_bundle), "--steps", "3", "--sizes", "32"]) == 2
    assert "--steps and --seed apply to diffusion restorers" in capsys.readouterr().err
