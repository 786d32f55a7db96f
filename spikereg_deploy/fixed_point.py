"""Loihi's integer arithmetic, written once.

The definition follows lava-nc 0.10's bit-accurate LIF model (`PyLifModelBitAcc`), which is what Loihi 2 computes for a
CUBA compartment: 12-bit decays applied as `x * (4096 - d) >> 12` rounded towards zero, synaptic input shifted left
by 6, a 24-bit current that wraps and a 24-bit voltage that saturates, threshold `vth_mant << 6` compared with a
strict `>`, and reset to zero. SLAYER's CUBA neuron computes the same integers (its state scale is 2^12 = 64 x 64) as
long as nothing saturates; `tests/test_fixed_point.py` proves it.

Every function here accepts numpy arrays or torch tensors (int64), so the reference engine (torch) and the Lava
process models (numpy) share it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .network import NeuronSpec

DECAY_BITS = 12
DECAY_UNITY = 1 << DECAY_BITS
ACTIVATION_SHIFT = 6  # lava LIF: a_in << 6
THRESHOLD_SHIFT = 6  # lava LIF: vth << 6
STATE_BITS = 24
STATE_LIMIT = 1 << (STATE_BITS - 1)  # 2^23

#: SLAYER's weight scale: a float weight w is the mantissa w * 64 (quantize_8bit keeps even mantissas).
WEIGHT_SCALE = 64
WEIGHT_MIN, WEIGHT_MAX = -256, 254

#: Analog input: an intensity in [0, 1] becomes an 8-bit payload, and the first synapse shifts its sum right by 8,
#: so the current equals (in weight units) sum(w * x) as the float model sees it. On Loihi 2 this is a graded spike
#: with a negative weight exponent.
INPUT_BITS = 8
INPUT_MAX = (1 << INPUT_BITS) - 1
INPUT_SHIFT = INPUT_BITS


def _xp(x: Any) -> Any:
    if type(x).__module__.startswith("torch"):
        import torch

        return torch
    return np


def _where(xp: Any, cond: Any, a: Any, b: Any) -> Any:
    return xp.where(cond, a, b)


def shift_toward_zero(x: Any, bits: int) -> Any:
    """x / 2^bits rounded towards zero, as Loihi's decay multipliers round."""
    xp = _xp(x)
    return xp.sign(x) * (xp.abs(x) >> bits)


def decay(x: Any, decay_value: int) -> Any:
    """Apply a 12-bit decay (4096 = forget everything) to an int64 state."""
    return shift_toward_zero(x * (DECAY_UNITY - int(decay_value)), DECAY_BITS)


def cuba_step(u: Any, v: Any, a_in: Any, neuron: NeuronSpec) -> tuple[Any, Any, Any]:
    """One time step of a CUBA compartment; returns (u, v, spikes). `a_in` is the integer synaptic sum.

    Mirrors lava-nc's bit-accurate LIF (whose `du` is exported `iDecay - 1` plus its own offset of 1).
    """
    xp = _xp(u)
    if xp is not np:
        return _cuba_step_torch(u, v, a_in, neuron)
    u_new = decay(u, neuron.i_decay) + (a_in << ACTIVATION_SHIFT)
    u_new = _where(xp, u_new > STATE_LIMIT, u_new - 2 * STATE_LIMIT, u_new)
    u_new = _where(xp, u_new <= -STATE_LIMIT, u_new + 2 * STATE_LIMIT, u_new)
    v_new = decay(v, neuron.v_decay) + u_new
    if xp is np:
        v_new = np.clip(v_new, -STATE_LIMIT + 1, STATE_LIMIT - 1)
    else:
        v_new = v_new.clamp(-STATE_LIMIT + 1, STATE_LIMIT - 1)
    spikes = v_new > (neuron.vth_mant << THRESHOLD_SHIFT)
    v_new = _where(xp, spikes, xp.zeros_like(v_new), v_new)
    return u_new, v_new, spikes


def _cuba_step_torch(u: Any, v: Any, a_in: Any, neuron: NeuronSpec) -> tuple[Any, Any, Any]:
    """The same step with fewer passes over memory (the reference engine spends most of its time here).

    Division with rounding_mode='trunc' by 4096 equals sign(x) * (|x| >> 12); wrapping is checked with one
    reduction because it almost never happens.
    """
    import torch

    u_new = torch.div(u * (DECAY_UNITY - neuron.i_decay), DECAY_UNITY, rounding_mode="trunc")
    u_new += a_in * (1 << ACTIVATION_SHIFT)
    if u_new.numel() and (u_new.max() > STATE_LIMIT or u_new.min() <= -STATE_LIMIT):
        u_new = torch.where(u_new > STATE_LIMIT, u_new - 2 * STATE_LIMIT, u_new)
        u_new = torch.where(u_new <= -STATE_LIMIT, u_new + 2 * STATE_LIMIT, u_new)
    v_new = torch.div(v * (DECAY_UNITY - neuron.v_decay), DECAY_UNITY, rounding_mode="trunc")
    v_new += u_new
    v_new.clamp_(-STATE_LIMIT + 1, STATE_LIMIT - 1)
    spikes = v_new > (neuron.vth_mant << THRESHOLD_SHIFT)
    v_new.masked_fill_(spikes, 0)
    return u_new, v_new, spikes


def quantize_input(x: Any) -> Any:
    """Intensities in [0, 1] (float) -> 8-bit payloads (int64); values outside are clipped."""
    xp = _xp(x)
    scaled = xp.round(x * (INPUT_MAX + 1))
    if xp is np:
        return np.clip(scaled, 0, INPUT_MAX).astype(np.int64)
    return scaled.clamp(0, INPUT_MAX).to(xp.int64)


def analog_current(weighted_sum: Any) -> Any:
    """Integer current of the analog first layer: sum(W * x_q) >> INPUT_SHIFT (arithmetic shift, floor)."""
    return weighted_sum >> INPUT_SHIFT


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
