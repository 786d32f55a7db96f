"""Loihi's number formats as plain constants: the one place each width, shift and range is written.

Dependency-free on purpose (no numpy, no torch), so that any module, a config validator or a documentation script
can read them without pulling in an array library. The arithmetic that uses them lives in `fixed_point.py` and in
the neuron models (`spikereg_deploy/neurons/`).
"""
from __future__ import annotations

#: Decays are 12-bit fractions: a decay d keeps x * (4096 - d) / 4096 of a state per step (4096 = forget all).
DECAY_BITS = 12
DECAY_UNITY = 1 << DECAY_BITS

#: lava-nc's LIF shifts the synaptic input left by 6 (a_in << 6) to MSB-align it with the 24-bit state.
ACTIVATION_SHIFT = 6
#: ... and the threshold mantissa by the same 6 bits (vth << 6) before the strict `v > threshold` comparison.
THRESHOLD_SHIFT = 6
#: The threshold mantissa is an unsigned 17-bit integer; 0 would make every non-negative voltage spike.
THRESHOLD_MANT_BITS = 17
THRESHOLD_MANT_MIN = 1
THRESHOLD_MANT_MAX = (1 << THRESHOLD_MANT_BITS) - 1

#: Current and voltage are 24-bit registers: the current wraps beyond +-2^23, the voltage saturates at
#: +-(2^23 - 1).
STATE_BITS = 24
STATE_LIMIT = 1 << (STATE_BITS - 1)  # 2^23
STATE_MAX = STATE_LIMIT - 1

#: SLAYER's weight scale: a float weight w is the mantissa w * 64 (quantize_8bit keeps even mantissas), and a float
#: threshold th is the mantissa int(th * 64).
WEIGHT_SCALE = 64
WEIGHT_MIN, WEIGHT_MAX = -256, 254

#: Analog input: an intensity in [0, 1] becomes an 8-bit payload, and the first synapse shifts its sum right by 8,
#: so the current equals (in weight units) sum(w * x) as the float model sees it. On Loihi 2 this is a graded spike
#: with a negative weight exponent.
INPUT_BITS = 8
INPUT_MAX = (1 << INPUT_BITS) - 1
INPUT_SHIFT = INPUT_BITS

#: A neuron bias is `bias_mant << bias_exp`, added to the voltage every step (lava-nc 0.10 `PyLifModelBitAcc`:
#: `v = decay(v) + u + bias`). The mantissa is 13-bit signed, the exponent 3-bit unsigned (lava-nc `LIF`
#: docstring; `LavaPyType(np.int16, precision=13)` / `precision=3`). Input-as-bias uses exponent 6, so that the
#: mantissa is the current in the same units as a synaptic sum (`a_in << 6` enters the current the same way).
BIAS_MANT_BITS = 13
BIAS_MANT_MIN = -(1 << (BIAS_MANT_BITS - 1))
BIAS_MANT_MAX = (1 << (BIAS_MANT_BITS - 1)) - 1
INPUT_BIAS_EXP = ACTIVATION_SHIFT


def decay_from_fraction(fraction: float) -> int:
    """A float decay fraction (SLAYER's `current_decay`) as the 12-bit integer lava-dl exports."""
    return int(round(DECAY_UNITY * fraction))


def threshold_mantissa(threshold: float) -> int:
    """A float threshold (SLAYER units) as the mantissa SLAYER exports: truncated, not rounded."""
    return int(threshold * WEIGHT_SCALE)
