"""3-D synapses for SLAYER: conv and transposed conv over (N, C, D, H, W, T).

SLAYER's `synapse.Conv` is a Conv3d with kernel (k, k, 1): it has no 3-D spatial convolution, so these fold time into
the batch and run torch's Conv3d/ConvTranspose3d. Weights pass through SLAYER's 8-bit quantization hook on every
forward (quantization-aware), so what is trained is exactly what gets exported.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from lava.lib.dl.slayer.utils import quantize

from spikereg_deploy.fixed_point import WEIGHT_MAX, WEIGHT_MIN, WEIGHT_SCALE


def quantize_8bit(weight: torch.Tensor) -> torch.Tensor:
    """SLAYER's CUBA `quantize_8bit`: even mantissas in [-256, 254] / 64, straight-through gradient."""
    return quantize(weight, step=2 / WEIGHT_SCALE).clamp(WEIGHT_MIN / WEIGHT_SCALE, WEIGHT_MAX / WEIGHT_SCALE)


def _fold_time(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    n, c, d, h, w, t = x.shape
    return x.permute(0, 5, 1, 2, 3, 4).reshape(n * t, c, d, h, w), t


def _unfold_time(y: torch.Tensor, t: int) -> torch.Tensor:
    nt, c, d, h, w = y.shape
    return y.reshape(nt // t, t, c, d, h, w).permute(0, 2, 3, 4, 5, 1)


class Conv3dSynapse(torch.nn.Module):
    """Dense 3-D convolution synapse; its weight has the layout the network description gives
    (`NetworkSpec.weight_shape`: (Cout, Cin, k, k, k), as torch and the .net file)."""

    transposed = False

    def __init__(self, weight_shape: tuple[int, ...], stride: tuple[int, int, int], padding: tuple[int, int, int],
                 output_padding: tuple[int, int, int] = (0, 0, 0), weight_scale: float = 1.0) -> None:
        super().__init__()
        self.stride, self.padding, self.output_padding = stride, padding, output_padding
        in_channels = weight_shape[0 if self.transposed else 1]
        fan_in = in_channels * math.prod(weight_shape[2:]) / (math.prod(stride) if self.transposed else 1)
        bound = weight_scale * math.sqrt(3.0 / fan_in)
        self.weight = torch.nn.Parameter(torch.empty(weight_shape).uniform_(-bound, bound))

    def quantized_weight(self) -> torch.Tensor:
        return quantize_8bit(self.weight)

    def integer_weight(self) -> np.ndarray:
        """Weight mantissas as Loihi stores them (even ints in [-256, 254])."""
        with torch.no_grad():
            return torch.round(self.quantized_weight() * WEIGHT_SCALE).to(torch.int64).cpu().numpy()

    def conv(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.conv3d(x, weight, stride=self.stride, padding=self.padding)

    def forward(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        folded, t = _fold_time(x)
        w = self.quantized_weight() if weight is None else weight
        return _unfold_time(self.conv(folded, w.to(folded.dtype)), t)


class ConvTranspose3dSynapse(Conv3dSynapse):
    """Transposed 3-D convolution synapse (upsampling), weight layout (Cin, Cout, k, k, k) like torch."""

    transposed = True

    def conv(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose3d(x, weight, stride=self.stride, padding=self.padding,
                                  output_padding=self.output_padding)
