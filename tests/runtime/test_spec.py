"""The spec's graph: sources wire the networks; order, per-image/spatial split and feeds derive from them."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mmfir.runtime.errors import BundleError, UsageError
from mmfir.runtime.spec import (CLIP_IMAGE, ENCODER, IMAGE, LOGITS, MMF, PIXELS, RESTORED, RESTORER, Graph,
                                NetworkSpec, OutputKind, Precision, TensorSpec, network_specs, output_ref)

TINY = {"encoder": {"embed_dim": 8, "vision": {"image_size": 32}, "class_names": ["a", "b", "c"]},
        "restorer": {"enc_blocks": [1, 1]}}


def refiner() -> NetworkSpec:
    """A third network reading the restorer's output: a declaration is all the graph needs."""
    return NetworkSpec("refiner", (TensorSpec(IMAGE, ("batch", 3, "height", "width"),
                                              source=output_ref(RESTORER, RESTORED)),),
                       (TensorSpec("refined", ("batch", 3, "height", "width"), kind=OutputKind.IMAGE),))


def test_mmfir_graph_is_encoder_then_restorer():
    graph = Graph(network_specs(TINY))
    assert graph.order == (ENCODER, RESTORER)
    assert graph.per_image == (ENCODER,) and graph.spatial == (RESTORER,)
    assert graph.sources(RESTORER) == {IMAGE: PIXELS, MMF: "encoder.mmf"}
    assert graph.sources(ENCODER) == {IMAGE: CLIP_IMAGE}
    assert graph.restored == "restorer.restored" and graph.logits == f"encoder.{LOGITS}"
    assert graph.consumed() == ["encoder.mmf"] and graph.multiple == 4


def test_feeds_and_run_follow_the_sources():
    graph = Graph(network_specs(TINY))
    calls = []

    def run(network, feeds):
        calls.append((network, sorted(feeds)))
        if network == ENCODER:
            return {name: np.full((2, 1), i, np.float32) for i, name in enumerate(graph[ENCODER].output_names)}
        return {RESTORED: feeds[IMAGE] + feeds[MMF].sum()}

    values = graph.run(run, {CLIP_IMAGE: np.zeros((2, 3, 32, 32)), PIXELS: np.ones((2, 1))})
    assert calls == [(ENCODER, [IMAGE]), (RESTORER, [IMAGE, MMF])]
    assert np.all(values["restorer.restored"] == 1 + 3 * 2)  # mmf (index 3) fed from the encoder


def test_a_new_network_is_one_declaration():
    specs = network_specs(TINY)
    graph = Graph({"refiner": refiner(), **specs})
    assert graph.order == (ENCODER, RESTORER, "refiner")  # ordered by dataflow, not by declaration
    assert graph.spatial == (RESTORER, "refiner")
    assert graph.restored == "refiner.refined"  # the final image: the one no other network reads
    assert sorted(graph.consumed()) == ["encoder.mmf", "restorer.restored"]
    two_finals = NetworkSpec("other", refiner().inputs, refiner().outputs)
    with pytest.raises(BundleError, match="exactly one final image output"):
        Graph({"refiner": refiner(), "other": two_finals, **specs})


def test_bad_wiring_is_named():
    specs = network_specs(TINY)
    res = specs[RESTORER]
    broken = NetworkSpec(RESTORER, (res.inputs[0], TensorSpec(MMF, res.inputs[1].shape, source="encoder.tokens")),
                         res.outputs, res.profile, res.multiple)
    with pytest.raises(BundleError, match="'encoder.tokens' is neither"):
        Graph({**specs, RESTORER: broken})
    loop_a = NetworkSpec("a", (TensorSpec("x", (1,), source="b.y"),), (TensorSpec("y", (1,)),))
    loop_b = NetworkSpec("b", (TensorSpec("x", (1,), source="a.y"),), (TensorSpec("y", (1,)),))
    with pytest.raises(BundleError, match="cycle"):
        Graph({**specs, "a": loop_a, "b": loop_b})


def test_sources_survive_the_manifest():
    for spec in network_specs(TINY).values():
        again = NetworkSpec.from_json(json.loads(json.dumps(spec.to_json())))
        assert again == spec and [t.source for t in again.inputs] == [t.source for t in spec.inputs]


def test_concrete_shapes_and_precision_parsing():
    res = network_specs(TINY)[RESTORER]
    assert res.input(IMAGE).concrete({"batch": 2, "height": 16, "width": 8}) == (2, 3, 16, 8)
    assert Precision.parse("FP16") is Precision.FP16
    with pytest.raises(UsageError, match="unknown precision 'int4'"):
        Precision.parse("int4")


def test_a_diffusion_graph_has_a_sampler():
    """A diffusion section swaps the restorer for the denoiser: its state and time come from the sampler,
    its contexts from the encoder's embeddings; the graph's result is the sampler's final state."""
    from mmfir.runtime.spec import (DENOISER, NOISE, SAMPLED, SAMPLER_STATE, SAMPLER_TIME, denoiser_spec)

    config = {**TINY, "diffusion": {"unet": {"context_dim": 8, "ch_mult": [1, 2, 4]}, "sde": {}}}
    graph = Graph(network_specs(config))
    assert graph.order == (ENCODER, DENOISER) and graph.spatial == (DENOISER,) and graph.sampler == DENOISER
    assert graph.sources(DENOISER) == {"xt": SAMPLER_STATE, "cond": PIXELS, "time": SAMPLER_TIME,
                                       "text_context": "encoder.degradation", "image_context": "encoder.content"}
    assert graph.noise == f"{DENOISER}.{NOISE}" and graph.restored == SAMPLED and graph.multiple == 8
    assert Graph(network_specs(TINY)).sampler is None
    second = denoiser_spec(8, 8)
    with pytest.raises(BundleError, match="exactly one spatial network"):
        Graph({**network_specs(config), "second": NetworkSpec("second", second.inputs, second.outputs)})
