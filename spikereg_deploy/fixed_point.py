"""Loihi's integer arithmetic shared by every neuron model and synapse, written once.

The definitions follow lava-nc 0.10's bit-accurate LIF model (`PyLifModelBitAcc`), which is what Loihi 2 computes for
a compartment: 12-bit decays applied as `x * (4096 - d) >> 12` rounded towards zero, a 24-bit current that wraps and
a 24-bit voltage that saturates. The neuron dynamics built from these pieces live in `spikereg_deploy/neurons/`
(one module per model); the number formats in `quantization.py`, re-exported here so `fixed_point.X` keeps working.

Every function here accepts numpy arrays or torch tensors (int64), so the reference engine (torch) and the Lava
process models (numpy) share it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .errors import SpikeRegError
from .quantization import (
    ACTIVATION_SHIFT,
    BIAS_MANT_MAX,
    BIAS_MANT_MIN,
    DECAY_BITS,
    DECAY_UNITY,
    INPUT_BITS,
    INPUT_MAX,
    INPUT_SHIFT,
    STATE_BITS,
    STATE_LIMIT,
    STATE_MAX,
    THRESHOLD_SHIFT,
    WEIGHT_MAX,
    WEIGHT_MIN,
    WEIGHT_SCALE,
)

__all__ = [
    "ACTIVATION_SHIFT", "DECAY_BITS", "DECAY_UNITY", "INPUT_BITS", "INPUT_MAX", "INPUT_SHIFT", "STATE_BITS",
    "STATE_LIMIT", "STATE_MAX", "THRESHOLD_SHIFT", "WEIGHT_MAX", "WEIGHT_MIN", "WEIGHT_SCALE",
    "array_module", "shift_toward_zero", "decay", "wrap_state", "saturate_state", "quantize_input",
    "analog_current", "check_weight_mantissa",
]


def array_module(x: Any) -> Any:
    """numpy or torch, whichever `x` belongs to (the models run on both)."""
    if type(x).__module__.startswith("torch"):
        import torch

        return torch
    return np


def shift_toward_zero(x: Any, bits: int) -> Any:
    """x / 2^bits rounded towards zero, as Loihi's decay multipliers round."""
    xp = array_module(x)
    return xp.sign(x) * (xp.abs(x) >> bits)


def decay(x: Any, decay_value: int) -> Any:
    """Apply a 12-bit decay (4096 = forget everything) to an int64 state."""
    return shift_toward_zero(x * (DECAY_UNITY - int(decay_value)), DECAY_BITS)


def wrap_state(x: Any) -> Any:
    """The 24-bit current register: values beyond +-2^23 wrap around (lava-nc's rule, `> 2^23` and `<= -2^23`).

    Wrapping almost never happens, so one min/max pass decides whether the two full passes are needed."""
    xp = array_module(x)
    size = np.size(x) if xp is np else x.numel()
    if size == 0 or (x.max() <= STATE_LIMIT and x.min() > -STATE_LIMIT):
        return x
    x = xp.where(x > STATE_LIMIT, x - 2 * STATE_LIMIT, x)
    return xp.where(x <= -STATE_LIMIT, x + 2 * STATE_LIMIT, x)


def saturate_state(x: Any) -> Any:
    """The 24-bit voltage register: values saturate at +-(2^23 - 1)."""
    if array_module(x) is np:
        return np.clip(x, -STATE_MAX, STATE_MAX)
    return x.clamp(-STATE_MAX, STATE_MAX)


def quantize_input(x: Any) -> Any:
    """Intensities in [0, 1] (float) -> 8-bit payloads (int64); values outside are clipped."""
    xp = array_module(x)
    scaled = xp.round(x * (INPUT_MAX + 1))
    if xp is np:
        return np.clip(scaled, 0, INPUT_MAX).astype(np.int64)
    return scaled.clamp(0, INPUT_MAX).to(xp.int64)


def analog_current(weighted_sum: Any, shift: int = 0) -> Any:
    """Integer current of the analog first layer: sum(W * x_q) >> INPUT_SHIFT (arithmetic shift, floor), then
    `<< shift`, the receiving neuron model's `analog_input_shift` (0 but for sigma-delta, whose a_in is in
    payload units 2^12 finer than a binary spike's: it takes the current as its bias would be taken)."""
    return (weighted_sum >> INPUT_SHIFT) * (1 << shift)


def input_bias_mantissa(current: Any, layer: str) -> Any:
    """The first layer's static current as Loihi bias mantissas (exponent `INPUT_BIAS_EXP`), range-checked.

    Loihi holds a 13-bit signed mantissa; a current outside it cannot be a bias at this exponent (a larger exponent
    would drop low bits and change the integers), so it is refused with one line naming the layer.
    """
    lo, hi = int(current.min()), int(current.max())
    if lo < BIAS_MANT_MIN or hi > BIAS_MANT_MAX:
        raise SpikeRegError(f"layer {layer!r}: input bias {lo if lo < BIAS_MANT_MIN else hi} is outside Loihi's "
                            f"13-bit bias mantissa [{BIAS_MANT_MIN}, {BIAS_MANT_MAX}]; use input_mode 'analog'")
    return current


def check_weight_mantissa(weight: np.ndarray) -> str | None:
    """Why `weight` is not a valid 8-bit Loihi mantissa array (even ints in [-256, 254]), or None if it is."""
    if not np.issubdtype(weight.dtype, np.number):
        return f"weights have non-numeric dtype {weight.dtype}"
    if not np.all(np.isfinite(weight)):
        return "weights contain NaN or inf"
    if np.any(weight != np.round(weight)):
        return "weights are not integer mantissas"
    lo, hi = float(weight.min(initial=0)), float(weight.max(initial=0))
    if lo < WEIGHT_MIN or hi > WEIGHT_MAX:
        return f"weights out of the 8-bit range [{WEIGHT_MIN}, {WEIGHT_MAX}] (found {lo:g}..{hi:g})"
    return None
