"""Helpers the test modules import (``from support import ...``; tests/ is on pytest's pythonpath)."""
from __future__ import annotations

import importlib.util

import pytest


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


requires_torch = pytest.mark.skipif(not (have("torch") and have("open_clip")),
                                    reason="needs mmfir[export] (torch, open_clip)")
