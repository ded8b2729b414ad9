"""The exporter's version: bump it whenever export writes different graphs or manifests for the same
checkpoint (the default-bundle cache key includes it, so no cached bundle outlives the code that wrote it)."""

EXPORTER_VERSION = 6  # 3: LayerNorm2d channel means as 1x1 convolutions; 4: the restorer's inference form;
# 5: InstanceNormalization / GroupNormalization (the denoiser's GroupNorm) kept FP32 in FP16 graphs
# 6: INT8 activations symmetric (zero point 0; TensorRT's form, and OpenVINO on AMX runs it 1.8x faster)
