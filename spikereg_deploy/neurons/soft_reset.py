"""Soft-reset CUBA (NetX type `CUBA-SR`, a spikereg extension): CUBA's integers, but a spike subtracts the threshold.

Reset to zero throws the membrane's residue above the threshold away at every spike, an error that only a long T
averages out; reset by subtraction keeps it, which is what near-lossless ANN-to-SNN conversion relies on. With
`iDecay = 4096, vDecay = 0` and the half-threshold start this is QCFS's IF neuron (Bu et al., ICLR 2022; see
docs/hardware-facts.md, "Soft-reset neurons"). lava-nc 0.10 has no such neuron (every LIF model zeroes v), so its
Lava process is the project's own (`simulators/lava_models/soft_reset.py`), computing this module's `step`.

    u[t] = wrap(trunc(u[t-1] * (4096 - iDecay) / 4096) + (a_in[t] << 6))     24-bit current, wraps beyond +-2^23
    v[t] = clip(trunc(v[t-1] * (4096 - vDecay) / 4096) + u[t])              24-bit voltage, saturates at +-(2^23-1)
    spike[t] = v[t] > (vThMant << 6);  v[t] -= (vThMant << 6) where spiking
    v[0] = (vThMant << 6) // 2 if halfThresholdStart else 0;  u[0] = 0        at the start of every inference

At most one spike per step: a voltage above twice the threshold spikes once and keeps the residue (still above the
threshold), so the neuron goes on spiking in the next steps until it is spent, as a rate code should.

The half-threshold start needs `vDecay = 0`: in a pipelined run (Lava, Loihi) a layer at depth d sees d steps of
zero input before its first real one, during which a leaking voltage would decay from its start value and the
engines would disagree; without leak (and with u = 0 there) the voltage simply waits.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from ..fixed_point import decay, saturate_state, wrap_state
from ..quantization import (
    ACTIVATION_SHIFT,
    DECAY_UNITY,
    INPUT_BIAS_EXP,
    THRESHOLD_SHIFT,
    WEIGHT_SCALE,
    decay_from_fraction,
    threshold_mantissa,
)
from .base import NeuronModel, NeuronParamError, check_lava_tag, registered_lava_process

#: SLAYER's state scale: a float voltage or current (weight units, mantissa / 64) is the 24-bit integer / 2^12.
STATE_SCALE = WEIGHT_SCALE << ACTIVATION_SHIFT


@dataclass(frozen=True)
class SoftResetNeuron(NeuronModel):
    """Soft-reset CUBA parameters in Loihi's integer units.

    i_decay, v_decay: 12-bit decays as CUBA's (4096 = full decay per step); vth_mant: threshold mantissa, compared
    after `<< 6` against the voltage and subtracted from it at a spike; half_threshold_start: the voltage starts
    each inference at half the threshold (QCFS's shift; needs v_decay = 0, see the module docstring).
    """

    netx_type: ClassVar[str] = "CUBA-SR"
    netx_fields: ClassVar[dict[str, tuple[str, type]]] = {
        "iDecay": ("i_decay", int), "vDecay": ("v_decay", int), "vThMant": ("vth_mant", int),
        "halfThresholdStart": ("half_threshold_start", bool), "refDelay": ("ref_delay", int),
        "gradedSpike": ("graded", bool),
    }
    state_names: ClassVar[tuple[str, ...]] = ("current", "voltage")
    hyperparameters: ClassVar[tuple[str, ...]] = ("current_decay", "voltage_decay", "half_threshold_start")
    supports_bias: ClassVar[bool] = True
    subtractive_reset: ClassVar[bool] = True

    i_decay: int
    v_decay: int
    vth_mant: int
    half_threshold_start: bool = False
    ref_delay: int = 1
    graded: bool = False

    def __post_init__(self) -> None:
        self._check_int("i_decay", 0, DECAY_UNITY)
        self._check_int("v_decay", 0, DECAY_UNITY)
        self._check_spike_fields()
        if not isinstance(self.half_threshold_start, bool):
            raise NeuronParamError("half_threshold_start", "neuron half_threshold_start must be a boolean, got "
                                                           f"{self.half_threshold_start!r}")
        if self.half_threshold_start and self.v_decay != 0:
            raise NeuronParamError("half_threshold_start",
                                   f"a half-threshold start needs vDecay 0 (got {self.v_decay}): a leaking start "
                                   f"voltage would decay while a pipelined layer waits for its first input")

    @classmethod
    def from_float(cls, threshold: float, current_decay: float, voltage_decay: float,  # type: ignore[override]
                   half_threshold_start: bool = False) -> SoftResetNeuron:
        """Quantize SLAYER-style float parameters as lava-dl quantizes CUBA's (decays rounded, threshold truncated)."""
        return cls(i_decay=decay_from_fraction(current_decay), v_decay=decay_from_fraction(voltage_decay),
                   vth_mant=threshold_mantissa(threshold), half_threshold_start=half_threshold_start)

    @property
    def threshold_state(self) -> int:
        """The threshold in the 24-bit voltage's units (`vThMant << 6`): compared with `>` and subtracted."""
        return self.vth_mant << THRESHOLD_SHIFT

    @property
    def initial_voltage(self) -> int:
        """The voltage every inference starts from: half the threshold (exact: it is vThMant << 5) or 0."""
        return self.threshold_state // 2 if self.half_threshold_start else 0

    def init_state(self, shape: tuple[int, ...], xp: Any) -> tuple[Any, ...]:
        """(u, v) as int64 arrays: u = 0, v = `initial_voltage`."""
        return xp.zeros(shape, dtype=xp.int64), xp.full(shape, self.initial_voltage, dtype=xp.int64)

    def step(self, state: tuple[Any, ...], a_in: Any) -> tuple[tuple[Any, ...], Any]:
        """One step of the compartment: (u, v), integer synaptic sum -> ((u, v), spikes); numpy or torch int64."""
        return self.step_biased(state, a_in, 0)

    def step_biased(self, state: tuple[Any, ...], a_in: Any, bias_mant: Any) -> tuple[tuple[Any, ...], Any]:
        """One step with Loihi's bias added to the voltage before the saturation, as lava-nc's LIF adds it:
        `v = clip(decay(v) + u + (bias_mant << 6))`, then the comparison and the subtraction."""
        return soft_reset_step(self, state, a_in, bias_mant, 1)

    def training_module(self) -> Any:
        """A torch module over (N, C, ..., T) computing `step`'s spikes exactly, with SLAYER's surrogate gradient."""
        from .soft_reset_training import SoftResetSlayerNeuron

        return SoftResetSlayerNeuron(self)

    def bias_training_module(self) -> Any:
        """An input-fed layer with input_mode "bias": a compartment whose bias is its only input keeps u = 0, so
        v = decay(v) + bias, which is this model with iDecay = 4096 fed the bias at every step (u[t] = bias)."""
        from .soft_reset_training import SoftResetSlayerNeuron

        return SoftResetSlayerNeuron(replace(self, i_decay=DECAY_UNITY))

    def lava_process(self, shape: tuple[int, ...], tag: str, name: str, bias_mant: Any = 0) -> Any:
        """The project's `SoftResetLIF` process (lava-nc has none), registered by the simulators stage; its models
        rebuild this dataclass from the NetX fields and call `step_biased`. v and the bias in the tag's units
        (integers for fixed_pt; weight units, / 64 and / 2^12, for floating_pt)."""
        check_lava_tag(tag)
        process = registered_lava_process(self.netx_type, name)
        fixed = tag == "fixed_pt"
        v_init = self.initial_voltage if fixed else self.initial_voltage / STATE_SCALE
        return process(shape=shape, neuron=self.to_netx_fields(), v_init=v_init,
                       bias=self.lava_bias_units(bias_mant, shape, tag), name=name)

    def lava_bias_units(self, bias_mant: Any, shape: tuple[int, ...], tag: str) -> Any:
        """`SoftResetLIF.bias`: the mantissas for fixed_pt (the model shifts them by 6); in state units / 2^12 else."""
        bias = np.broadcast_to(np.asarray(bias_mant), shape)
        if tag == "fixed_pt":
            return np.array(bias, dtype=np.int64)
        return np.array(bias, dtype=np.float64) * (1 << INPUT_BIAS_EXP) / STATE_SCALE


def soft_reset_step(neuron: SoftResetNeuron, state: tuple[Any, ...], a_in: Any, bias_mant: Any,
                    max_payload: int) -> tuple[tuple[Any, ...], Any]:
    """The soft-reset compartment, written once for the binary (`max_payload` 1) and the multi-threshold model.

    `u = wrap(decay(u) + (a_in << 6))`, `v = clip(decay(v) + u + (bias << 6))`; the payload is the number of
    threshold multiples the voltage lies strictly above, `k = clamp(ceil(v / theta) - 1, 0, max_payload)`, and
    `v -= k theta`. For one level this is `v > theta` (returned as bool spikes); for more, an int64 payload.
    """
    u, v = state
    u_new = wrap_state(decay(u, neuron.i_decay) + a_in * (1 << ACTIVATION_SHIFT))
    v_new = saturate_state(decay(v, neuron.v_decay) + u_new + bias_mant * (1 << INPUT_BIAS_EXP))
    theta = neuron.threshold_state
    if max_payload == 1:
        spikes = v_new > theta
        return (u_new, v_new - spikes * theta), spikes
    # for integers, ceil(v / theta) - 1 == floor((v - 1) / theta); floor division rounds down in numpy and torch
    payload = ((v_new - 1) // theta).clip(0, max_payload)
    return (u_new, v_new - payload * theta), payload
