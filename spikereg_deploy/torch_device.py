"""`--device cpu|cuda[:N]`: where the torch models (the ANN teacher, the SLAYER SNN) train and predict.

CPU is the default and what the tests run. On CUDA, SLAYER runs its neuron dynamics with its own CUDA kernels, so a
GPU run is the same model but not bit-identical to a CPU run (float sums in another order); the integer engines
(reference, Lava) always run on the CPU, where their arithmetic is the exact Loihi integers.
"""
from __future__ import annotations

import re
from typing import Any

from .errors import SpikeRegError

DEVICE_CHOICES = "cpu, cuda or cuda:N"
DEFAULT_DEVICE = "cpu"


def torch_device(name: str) -> Any:
    """The torch.device for `name`, or one line saying why it cannot be used on this machine."""
    import torch

    if name == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match is None:
        raise SpikeRegError(f"--device {name!r}: expected {DEVICE_CHOICES}")
    if not torch.cuda.is_available():
        raise SpikeRegError(f"--device {name}: no CUDA device is available here (torch {torch.__version__}, "
                            f"CUDA build {torch.version.cuda or 'none'}); use --device cpu")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise SpikeRegError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device("cuda", index)


def add_device_option(parser: Any, what: str) -> None:
    """The `--device` option of the tools that run torch models."""
    parser.add_argument("--device", default=DEFAULT_DEVICE, metavar="DEVICE",
                        help=f"where {what} runs: {DEVICE_CHOICES} (default cpu; CUDA runs SLAYER's neurons on the "
                             "GPU, not bit-identical to CPU; the integer engines always run on the CPU)")
