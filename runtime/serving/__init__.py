"""Serving a bundle with NVIDIA Triton Inference Server.

- ``repo``: writes a Triton model repository from a bundle (configs generated from the network specs).
- ``python_models``: the python-backend models that repository runs (imported by Triton's stub only).
- ``server``: finds a ``tritonserver`` binary (nvidia-pytriton's, or one given), starts it on loopback,
  waits for readiness and stops it with its process group.
- ``client``: sends images to a running server over HTTP or gRPC (tritonclient).
"""
