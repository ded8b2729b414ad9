"""A Triton model repository from a bundle: configs generated from the network specs.

    REPO/
      preprocess/   python: UINT8 H x W x 3 image -> CLIP input, padded [0, 1] pixels, original size
      encoder/      python (mmfir runtime) | onnxruntime (model.onnx) | tensorrt (model.plan)
      restorer/     same, on the padded pixels and the encoder's mmf tokens
      (denoiser/)   a diffusion bundle's instead of restorer/: python, the whole sampling loop (below)
      postprocess/  python: crop to the original size, softmax, class label
      mmfir/        ensemble: image in; restored image, degradation class and probabilities out

Model configs come from the network specs, and the ensemble's steps from the graph: each network
input is mapped to the ensemble tensor of its ``source`` (the preprocess model's ``clip_image`` or
``pixels``, or another network's output), so a bundle with other networks needs no edit here. The pre-
and postprocess models are python models in every variant: they are the runtime's own numpy code
(runtime/preprocess.py, runtime/tiling.py), so a served image equals an in-process restore.

A diffusion bundle's sampler network (DA-CLIP's U-Net) is served by one python model that runs the
runtime's own sampling loop over the whole image (``python_models.SamplerModel``: every step's noise
prediction on onnxruntime, the IR-SDE in numpy), fed the preprocess model's pixels and size and the
encoder's outputs; ``steps`` and ``seed`` are fixed per repository (``--steps``, ``--seed``).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..bundle import MANIFEST, Bundle
from ..errors import BundleError, UsageError
from ..files import make_staging_dir, replace_dir, write_text_atomic
from ..pipeline import check_sampling
from ..spec import (CLIP_IMAGE, IMAGE, LOGITS, PIPELINE_SOURCES, PIXELS, RESTORED, SAMPLED, Graph, NetworkSpec,
                    Precision, TensorSpec)
from .pbtxt import Enum, render

BACKENDS = ("python", "onnxruntime", "tensorrt")
ENSEMBLE, PREPROCESS, POSTPROCESS = "mmfir", "preprocess", "postprocess"
TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int32": "TYPE_INT32", "int64": "TYPE_INT64",
                "uint8": "TYPE_UINT8", "bytes": "TYPE_STRING"}
# The ensemble's interface (what clients send and receive): image in; restored, class, probabilities out.
CLASS, PROBS = "degradation_class", "degradation_probs"
SIZE, PADDED_RESTORED = "size", "padded_restored"  # preprocess -> postprocess
MODEL_PY = '''"""Triton python-backend model `{name}` of mmfir (written by `mmfir serve-repo`)."""
from pathlib import Path

from mmfir.runtime.serving.python_models import {cls}


class TritonPythonModel({cls}):
    repository = Path(__file__).resolve().parents[2]  # REPO/{name}/1/model.py -> REPO
'''
# The repository carries its own copy of the bundle (hard links where the file system allows), so it can
# be moved or mounted anywhere: Triton ignores non-numeric folders inside a model's folder.
BUNDLE_DIR = f"{ENSEMBLE}/bundle"


@dataclass(frozen=True)
class RepoOptions:
    backend: str = "python"
    instances: int = 1
    max_batch: int = 4
    kind: str | None = None           # cpu | gpu; default gpu for tensorrt, cpu otherwise
    precision: Precision = Precision.FP32
    threads: int | None = None        # onnxruntime threads per instance (python backend)
    max_side: int | None = None       # refuse larger images; default: the restorer profile's largest tile
    queue_delay_us: int = 2000        # dynamic batcher's wait for more requests
    steps: int | None = None          # a diffusion bundle's sampling steps (default: its T)
    seed: int | None = None           # a diffusion bundle's noise seed for every request (default: fresh noise)

    def checked(self) -> "RepoOptions":
        if self.backend not in BACKENDS:
            raise UsageError(f"unknown serving backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.kind not in (None, "cpu", "gpu"):
            raise UsageError(f"unknown instance kind {self.kind!r}; choose cpu or gpu")
        if self.backend == "tensorrt" and self.kind == "cpu":
            raise UsageError("the tensorrt backend runs on GPUs only; drop --kind cpu")
        for name in ("instances", "max_batch", "steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        return self

    @property
    def instance_kind(self) -> str:
        return self.kind or ("gpu" if self.backend == "tensorrt" else "cpu")


def is_batched(spec: NetworkSpec) -> bool:
    """Triton batching needs every input and output to lead with the batch axis."""
    return all(t.shape and t.shape[0] == "batch" for t in spec.inputs + spec.outputs)


def tensor(name: str, dtype: str, dims) -> dict:
    return {"name": name, "data_type": Enum(TRITON_TYPES[dtype]),
            "dims": [d if isinstance(d, int) else -1 for d in dims]}


def spec_tensor(t: TensorSpec, batched: bool) -> dict:
    return tensor(t.name, t.dtype, t.shape[1:] if batched else t.shape)


def parameters(values: dict) -> list[dict]:
    return [{"key": k, "value": {"string_value": str(v)}} for k, v in values.items() if v is not None]


def instance_group(options: RepoOptions, kind: str | None = None) -> list[dict]:
    return [{"count": options.instances, "kind": Enum(f"KIND_{(kind or options.instance_kind).upper()}")}]


def batching(options: RepoOptions) -> dict:
    """max_batch_size and dynamic batching. Triton batches only requests whose shapes agree, so
    variable-size images are batched when they share a size (the encoder's input always does)."""
    return {"max_batch_size": options.max_batch,
            "dynamic_batching": {"max_queue_delay_microseconds": options.queue_delay_us}}


def max_batch_for(spec: NetworkSpec, options: RepoOptions) -> int:
    """TensorRT engines accept at most their profile's largest batch."""
    if options.backend != "tensorrt":
        return options.max_batch
    return min(options.max_batch, min(p[2][0] for p in spec.profile.values()))


def runtime_backend(options: RepoOptions) -> str:
    """The mmfir runtime backend a python model runs its network on."""
    return "ort-cuda" if options.instance_kind == "gpu" else "ort-cpu"


def network_config(spec: NetworkSpec, bundle: Bundle, options: RepoOptions) -> dict:
    batched = is_batched(spec)
    head: dict = {"name": spec.name}
    if options.backend == "python":
        head["backend"] = "python"
    elif options.backend == "onnxruntime":
        head.update(platform="onnxruntime_onnx", default_model_filename="model.onnx")
    else:
        head.update(platform="tensorrt_plan", default_model_filename="model.plan")
    if batched:
        head.update(batching(options), max_batch_size=max_batch_for(spec, options))
    else:
        head["max_batch_size"] = 0
    head["input"] = [spec_tensor(t, batched) for t in spec.inputs]
    head["output"] = [spec_tensor(t, batched) for t in spec.outputs]
    head["instance_group"] = instance_group(options)
    if options.backend == "python":
        head["parameters"] = parameters({"bundle": BUNDLE_DIR, "network": spec.name,
                                         "precision": options.precision.value,
                                         "runtime_backend": runtime_backend(options), "threads": options.threads})
    return head


def context_inputs(graph: Graph) -> dict[str, str]:
    """The sampler network's inputs read from other networks' outputs: {input name: source}."""
    return {name: source for name, source in graph.sources(graph.sampler).items() if source not in PIPELINE_SOURCES}


def sampler_config(graph: Graph, bundle: Bundle, options: RepoOptions) -> dict:
    """The python model running a diffusion bundle's sampling loop (whole image, one request at a time)."""
    spec = graph[graph.sampler]
    contexts = [spec_tensor(spec.input(name), True) for name in context_inputs(graph)]
    return {"name": spec.name, "backend": "python", **batching(options),
            "input": [source_tensor(graph, PIXELS), tensor(SIZE, "int32", (2,)), *contexts],
            "output": [tensor(SAMPLED, "float32", (3, -1, -1))],
            "instance_group": instance_group(options),
            "parameters": parameters({"bundle": BUNDLE_DIR, "precision": options.precision.value,
                                      "runtime_backend": runtime_backend(options), "threads": options.threads,
                                      "steps": options.steps, "seed": options.seed})}


def ensemble_name(source: str) -> str:
    """The ensemble tensor carrying a graph source (``encoder.mmf`` -> ``encoder_mmf``)."""
    return source.replace(".", "_")


def source_tensor(graph: Graph, source: str) -> dict:
    """The preprocess output for a pipeline source, shaped like the (batched) network input that reads it."""
    reader = next(t for n in graph.order for t in graph[n].inputs if t.source == source)
    return tensor(source, reader.dtype, reader.shape[1:])


def preprocess_config(graph: Graph, bundle: Bundle, options: RepoOptions) -> dict:
    max_side = options.max_side or min(graph[n].profile[t.name][2][-1] for n in graph.spatial
                                       for t in graph[n].inputs if t.source == PIXELS)
    return {"name": PREPROCESS, "backend": "python", **batching(options),
            "input": [tensor(IMAGE, "uint8", (-1, -1, 3))],
            "output": [source_tensor(graph, CLIP_IMAGE), source_tensor(graph, PIXELS), tensor(SIZE, "int32", (2,))],
            "instance_group": instance_group(options, "cpu"),
            "parameters": parameters({"bundle": BUNDLE_DIR, "max_side": max_side})}


def logits_spec(graph: Graph) -> TensorSpec:
    network, _, name = graph.logits.partition(".")
    return graph[network].output(name)


def postprocess_config(graph: Graph, bundle: Bundle, options: RepoOptions) -> dict:
    logits = logits_spec(graph)
    return {"name": POSTPROCESS, "backend": "python", **batching(options),
            "input": [tensor(PADDED_RESTORED, "float32", (3, -1, -1)), tensor(SIZE, "int32", (2,)),
                      tensor(LOGITS, logits.dtype, logits.shape[1:])],
            "output": [tensor(RESTORED, "float32", (-1, -1, 3)), tensor(CLASS, "bytes", (1,)),
                       tensor(PROBS, "float32", logits.shape[1:])],
            "instance_group": instance_group(options, "cpu"),
            "parameters": parameters({"bundle": BUNDLE_DIR, "class_names": json.dumps(bundle.class_names)})}


def step(model: str, inputs: dict[str, str], outputs: dict[str, str]) -> dict:
    """One ensemble step; maps are {model tensor: ensemble tensor}."""
    return {"model_name": model, "model_version": -1,
            "input_map": [{"key": k, "value": v} for k, v in inputs.items()],
            "output_map": [{"key": k, "value": v} for k, v in outputs.items()]}


def network_steps(graph: Graph) -> list[dict]:
    """One step per network, in graph order: inputs from their sources, the outputs someone reads."""
    needed = set(graph.consumed()) | {graph.restored, graph.logits}
    steps = []
    for network in graph.order:
        if network == graph.sampler:
            inputs = {PIXELS: PIXELS, SIZE: SIZE, **{n: ensemble_name(s) for n, s in context_inputs(graph).items()}}
            steps.append(step(network, inputs, {SAMPLED: ensemble_name(SAMPLED)}))
            continue
        inputs = {name: ensemble_name(source) for name, source in graph.sources(network).items()}
        outputs = {t.name: ensemble_name(f"{network}.{t.name}") for t in graph[network].outputs
                   if f"{network}.{t.name}" in needed}
        steps.append(step(network, inputs, outputs))
    return steps


def ensemble_config(graph: Graph, options: RepoOptions) -> dict:
    logits = logits_spec(graph)
    batch = min(max_batch_for(graph[n], options) for n in graph.order)
    return {"name": ENSEMBLE, "platform": "ensemble", "max_batch_size": batch,
            "input": [tensor(IMAGE, "uint8", (-1, -1, 3))],
            "output": [tensor(RESTORED, "float32", (-1, -1, 3)), tensor(CLASS, "bytes", (1,)),
                       tensor(PROBS, "float32", logits.shape[1:])],
            "ensemble_scheduling": {"step": [
                step(PREPROCESS, {IMAGE: IMAGE}, {CLIP_IMAGE: CLIP_IMAGE, PIXELS: PIXELS, SIZE: SIZE}),
                *network_steps(graph),
                step(POSTPROCESS, {PADDED_RESTORED: ensemble_name(graph.restored), SIZE: SIZE,
                                   LOGITS: ensemble_name(graph.logits)},
                     {RESTORED: RESTORED, CLASS: CLASS, PROBS: PROBS}),
            ]}}


def model_configs(bundle: Bundle, options: RepoOptions) -> dict[str, dict]:
    """Every model's config, keyed by model name (ensemble batch sizes fitted to the networks')."""
    graph = bundle.graph
    configs = {PREPROCESS: preprocess_config(graph, bundle, options),
               **{n: (sampler_config(graph, bundle, options) if n == graph.sampler else
                      network_config(graph[n], bundle, options)) for n in graph.order},
               POSTPROCESS: postprocess_config(graph, bundle, options),
               ENSEMBLE: ensemble_config(graph, options)}
    batch = configs[ENSEMBLE]["max_batch_size"]
    for name in (PREPROCESS, POSTPROCESS):
        configs[name]["max_batch_size"] = batch
    return configs


PYTHON_CLASSES = {PREPROCESS: "PreprocessModel", POSTPROCESS: "PostprocessModel"}  # networks: NetworkModel


def python_class(name: str, bundle: Bundle) -> str:
    if name == bundle.graph.sampler:
        return "SamplerModel"
    return PYTHON_CLASSES.get(name, "NetworkModel")


def write_model(folder: Path, name: str, config: dict, bundle: Bundle, options: RepoOptions) -> str | None:
    """config.pbtxt and the version folder's model file; returns a note when something is left to do."""
    version = folder / name / "1"
    version.mkdir(parents=True)
    header = f"# Triton model `{name}`, written by `mmfir serve-repo` from bundle `{bundle.root.name}`\n"
    write_text_atomic(folder / name / "config.pbtxt", header + render(config))
    if name == ENSEMBLE:
        return None
    if config.get("backend") == "python":
        write_text_atomic(version / "model.py", MODEL_PY.format(name=name, cls=python_class(name, bundle)))
        return None
    if options.backend == "onnxruntime":
        shutil.copyfile(bundle.onnx_path(name, options.precision), version / "model.onnx")
        return None
    return copy_plan(bundle, name, options.precision, version / "model.plan")


def copy_plan(bundle: Bundle, network: str, precision: Precision, target: Path) -> str | None:
    """The bundle's TensorRT plan for the network, when one was built; else what to do."""
    from ..engine_cache import engine_record

    record = engine_record(bundle, network, precision)
    plan = bundle.engines_dir / Path(record["file"]).name if record else None
    if plan is None or not plan.is_file():
        return (f"{network}: no {precision.value} TensorRT plan in {bundle.engines_dir}; build one with "
                f"`mmfir build BUNDLE --precision {precision.value}` "
                f"on the serving GPU (same TensorRT version as the Triton container) and copy it to "
                f"{network}/1/model.plan in the repository")
    shutil.copyfile(plan, target)
    return None


def link_or_copy(src: Path, dst: Path) -> None:
    try:
        dst.hardlink_to(src)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(src, dst)


def write_bundle_copy(folder: Path, bundle: Bundle, options: RepoOptions) -> Path:
    """REPO/mmfir/bundle: the manifest, and the graphs the python models run (verified against it)."""
    target = folder / BUNDLE_DIR
    target.mkdir(parents=True)
    link_or_copy(bundle.root / MANIFEST, target / MANIFEST)
    for network in bundle.graph.order:
        if options.backend == "python" or network == bundle.graph.sampler:
            src = bundle.onnx_path(network, options.precision)
            link_or_copy(src, target / src.name)
    return target


def write_repository(bundle: Bundle | str | Path, out: str | Path, options: RepoOptions = RepoOptions(),
                     force: bool = False) -> tuple[Path, list[str]]:
    """Write the model repository at ``out`` (staged, then renamed); returns (path, notes)."""
    bundle = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
    options, out = options.checked(), Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise UsageError(f"{out} exists and is not empty; pass --force to replace it")
    if options.precision not in bundle.precisions():
        raise BundleError(f"bundle {bundle.root} has no {options.precision.value} graphs; choose another --precision")
    check_sampling(bundle, options.steps, options.seed)  # steps outside 1..T: now, not when Triton loads it
    staging = make_staging_dir(out)
    try:
        notes = [n for name, cfg in model_configs(bundle, options).items()
                 if (n := write_model(staging, name, cfg, bundle, options))]
        write_bundle_copy(staging, bundle, options)
        replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out, notes
