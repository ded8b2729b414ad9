"""Backends: one small module each, imported on demand (see ``base.registry``)."""
from .base import (Backend, available_backends, backend_class, backend_names, backend_status, create_backend,
                   deployable_backends, register_backend, registry)

__all__ = ["Backend", "available_backends", "backend_class", "backend_names", "backend_status", "create_backend",
           "deployable_backends", "register_backend", "registry"]
