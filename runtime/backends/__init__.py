"""Backends: one small module each, imported on demand (see base.REGISTRY)."""
from .base import REGISTRY, Backend, available_backends, backend_status, create_backend

__all__ = ["REGISTRY", "Backend", "available_backends", "backend_status", "create_backend"]
