"""What a measurement was taken on: machine load, threads, versions."""

from __future__ import annotations

import os
import platform
import time

import torch

from core import native


def load() -> dict:
    """The 1/5/15-minute load averages and the time, as ``uptime`` reports them."""
    one, five, fifteen = os.getloadavg()
    return {"time": time.strftime("%Y-%m-%d %H:%M:%S"), "load1": round(one, 2),
            "load5": round(five, 2), "load15": round(fifteen, 2)}


def describe() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "lstm_loops": native.status(),  # C (core/native) or Python: what the LSTM pass ran on
        "python": platform.python_version(),
    }


def load_line(d: dict) -> str:
    return f"load average {d['load1']:.2f}, {d['load5']:.2f}, {d['load15']:.2f} at {d['time']}"
