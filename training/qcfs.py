"""The QCFS activation: a teacher whose activations already take the values T spikes can express.

Quantization-clip-floor-shift (Bu et al., "Optimal ANN-SNN conversion for high-accuracy and ultra-low-latency spiking
neural networks", ICLR 2022): with L levels and a trainable clip lambda per layer,

    a = lambda / L * clamp(floor(x * L / lambda + 1/2), 0, L)

A soft-reset IF neuron with threshold lambda whose membrane starts at lambda / 2 and that receives the constant current
x for T = L steps fires exactly clamp(floor(x * L / lambda + 1/2), 0, L) times (up to ties, see `ifs_spike_count`),
so its rate times lambda is this activation: conversion maps each clip to its layer's threshold instead of
calibrating one. Ties differ: at x * L / lambda = k - 1/2 the floor rounds up to k, while the neuron's strict
`v > threshold` (Loihi's comparison) leaves it at k - 1 spikes, the voltage ending exactly on the threshold.
The floor passes the gradient straight through (as in the paper), so lambda learns from the task.

The ReLU teacher stays the default (`UNetConfig.activation`); this module is the one place the QCFS rule lives.
"""
from __future__ import annotations

import math

import torch


def floor_straight_through(x: torch.Tensor) -> torch.Tensor:
    """floor(x) forward, identity backward (the paper's surrogate for the floor's zero gradient)."""
    return x + (torch.floor(x) - x).detach()


def qcfs(x: torch.Tensor, clip: torch.Tensor, levels: int) -> torch.Tensor:
    """Clip-floor-shift activation with `levels` steps of clip / levels; `clip` is a positive scalar tensor."""
    scaled = floor_straight_through(x * levels / clip + 0.5) / levels
    return clip * scaled.clamp(0.0, 1.0)


class QcfsActivation(torch.nn.Module):
    """One layer's QCFS with its trainable clip, kept as a log so it stays positive under Adam."""

    def __init__(self, levels: int, clip: float = 1.0) -> None:
        super().__init__()
        if levels <= 0:
            raise ValueError(f"QCFS levels must be >= 1, got {levels}")
        self.levels = int(levels)
        self.log_clip = torch.nn.Parameter(torch.tensor(math.log(clip)))

    @property
    def clip(self) -> float:
        return float(self.log_clip.detach().exp())

    def set_clip(self, clip: float) -> None:
        with torch.no_grad():
            self.log_clip.fill_(math.log(max(clip, 1e-6)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return qcfs(x, self.log_clip.exp(), self.levels)
