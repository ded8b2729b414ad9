"""What every benchmark result records about the machine and the moment it ran (load included)."""
from __future__ import annotations

import os
import time


def record() -> dict:
    from mmfir.measure.machine import machine_info

    info = machine_info()
    info["date"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    info["load_average_1_5_15"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return info
