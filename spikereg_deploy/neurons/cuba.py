"""CUBA LIF (NetX type `CUBA`): lava-dl's current-based leaky integrate-and-fire neuron, reset to zero.

The integers are lava-nc 0.10's bit-accurate LIF (`PyLifModelBitAcc`), what Loihi 2 computes for a CUBA compartment:

    u[t] = trunc(u[t-1] * (4096 - iDecay) / 4096) + (a_in[t] << 6)     24-bit, wraps
    v[t] = trunc(v[t-1] * (4096 - vDecay) / 4096) + u[t]               24-bit, saturates
    spike[t] = v[t] > (vThMant << 6);  v[t] = 0 where spiking

SLAYER's CUBA neuron computes the same integers (its state scale is 2^12 = 64 x 64) as long as nothing saturates;
`tests/test_fixed_point.py` proves it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import SpikeRegError
from ..fixed_point import array_module, decay, saturate_state, wrap_state
from ..quantization import (
    ACTIVATION_SHIFT,
    DECAY_UNITY,
    INPUT_BIAS_EXP,
    STATE_MAX,
    THRESHOLD_SHIFT,
    WEIGHT_SCALE,
    decay_from_fraction,
    threshold_mantissa,
)
from .base import NeuronModel, check_lava_tag


@dataclass(frozen=True)
class CubaNeuron(NeuronModel):
    """CUBA neuron parameters in Loihi's integer units (lava-dl's exported `iDecay`, `vDecay`, `vThMant`, ...).

    i_decay, v_decay: 12-bit decays (4096 = full decay per step); vth_mant: threshold mantissa, compared after a
    left shift by 6 against the 24-bit voltage.
    """

    netx_type: ClassVar[str] = "CUBA"
    netx_fields: ClassVar[dict[str, tuple[str, type]]] = {
        "iDecay": ("i_decay", int), "vDecay": ("v_decay", int), "vThMant": ("vth_mant", int),
        "refDelay": ("ref_delay", int), "gradedSpike": ("graded", bool),
    }
    state_names: ClassVar[tuple[str, ...]] = ("current", "voltage")
    hyperparameters: ClassVar[tuple[str, ...]] = ("current_decay", "voltage_decay")
    supports_bias: ClassVar[bool] = True

    i_decay: int
    v_decay: int
    vth_mant: int
    ref_delay: int = 1
    graded: bool = False

    def __post_init__(self) -> None:
        self._check_int("i_decay", 0, DECAY_UNITY)
        self._check_int("v_decay", 0, DECAY_UNITY)
        self._check_spike_fields()

    @classmethod
    def from_float(cls, threshold: float, current_decay: float, voltage_decay: float) -> CubaNeuron:  # type: ignore[override]
        """Quantize SLAYER's float parameters exactly as lava-dl's CUBA neuron exports them."""
        return cls(i_decay=decay_from_fraction(current_decay), v_decay=decay_from_fraction(voltage_decay),
                   vth_mant=threshold_mantissa(threshold))

    def step(self, state: tuple[Any, ...], a_in: Any) -> tuple[tuple[Any, ...], Any]:
        """One step of the compartment: (u, v), integer synaptic sum -> ((u, v), spikes)."""
        return self.step_biased(state, a_in, 0)

    def step_biased(self, state: tuple[Any, ...], a_in: Any, bias_mant: Any) -> tuple[tuple[Any, ...], Any]:
        """One step with lava-nc's bias: `v = decay(v) + u + (bias_mant << 6)`, before the saturation."""
        u, v = state
        if array_module(u) is not np:
            return self._step_torch(u, v, a_in, bias_mant)
        u_new = wrap_state(decay(u, self.i_decay) + (a_in << ACTIVATION_SHIFT))
        v_new = saturate_state(decay(v, self.v_decay) + u_new + (bias_mant << INPUT_BIAS_EXP))
        spikes = v_new > (self.vth_mant << THRESHOLD_SHIFT)
        v_new = np.where(spikes, 0, v_new)
        return (u_new, v_new), spikes

    def _step_torch(self, u: Any, v: Any, a_in: Any, bias_mant: Any) -> tuple[tuple[Any, ...], Any]:
        """The same step with fewer passes over memory (the reference engine spends most of its time here).

        Division with rounding_mode='trunc' by 4096 equals sign(x) * (|x| >> 12), in one pass instead of four.
        """
        import torch

        u_new = torch.div(u * (DECAY_UNITY - self.i_decay), DECAY_UNITY, rounding_mode="trunc")
        u_new += a_in * (1 << ACTIVATION_SHIFT)
        u_new = wrap_state(u_new)
        v_new = torch.div(v * (DECAY_UNITY - self.v_decay), DECAY_UNITY, rounding_mode="trunc")
        v_new += u_new
        if not isinstance(bias_mant, int) or bias_mant:
            v_new += bias_mant * (1 << INPUT_BIAS_EXP)
        v_new.clamp_(-STATE_MAX, STATE_MAX)
        spikes = v_new > (self.vth_mant << THRESHOLD_SHIFT)
        v_new.masked_fill_(spikes, 0)
        return (u_new, v_new), spikes

    def training_module(self) -> Any:
        """SLAYER's CUBA neuron with these (fixed, hardware) decays; the threshold is set per layer."""
        from lava.lib.dl.slayer.neuron import cuba

        return cuba.Neuron(threshold=self.threshold, current_decay=self.i_decay / DECAY_UNITY,
                           voltage_decay=self.v_decay / DECAY_UNITY, shared_param=True, persistent_state=False,
                           requires_grad=False)

    def bias_training_module(self) -> Any:
        """SLAYER has no bias (cuba.py: "bias can be enabled by adding it here"), but a biased compartment without
        synaptic input keeps u = 0, so v = decay(v) + bias is SLAYER's CUBA with current_decay = 1 fed the bias as
        its input every step: u[t] = bias, then the same voltage decay and threshold."""
        from lava.lib.dl.slayer.neuron import cuba

        return cuba.Neuron(threshold=self.threshold, current_decay=1.0, voltage_decay=self.v_decay / DECAY_UNITY,
                           shared_param=True, persistent_state=False, requires_grad=False)

    def lava_process(self, shape: tuple[int, ...], tag: str, name: str, bias_mant: Any = 0) -> Any:
        """lava-nc's `LIF`: bit-accurate integers for fixed_pt, the float dynamics for floating_pt; `bias_mant`
        (integer mantissas at exponent 6, input_mode "bias") is the static input current."""
        from lava.proc.lif.process import LIF

        check_lava_tag(tag)
        if tag == "fixed_pt":
            if self.i_decay < 1:
                raise SpikeRegError(
                    f"layer {name!r}: iDecay 0 cannot be expressed in lava-nc's LIF (du = iDecay - 1)")
            # lava-nc's bit-accurate LIF decays u by (du + 1); netx passes du = iDecay - 1 for the same reason.
            return LIF(shape=shape, du=self.i_decay - 1, dv=self.v_decay, vth=self.vth_mant,
                       bias_mant=self.lava_bias_units(bias_mant, shape, tag), bias_exp=INPUT_BIAS_EXP, name=name)
        return LIF(shape=shape, du=self.i_decay / DECAY_UNITY, dv=self.v_decay / DECAY_UNITY,
                   vth=self.vth_mant / WEIGHT_SCALE, bias_mant=self.lava_bias_units(bias_mant, shape, tag),
                   bias_exp=0.0, name=name)

    lava_bias_var: ClassVar[str] = "bias_mant"

    def lava_bias_units(self, bias_mant: Any, shape: tuple[int, ...], tag: str) -> Any:
        """LIF's `bias_mant`: the mantissas for fixed_pt (exponent 6 on the process); / 64 in float."""
        return lif_bias_units(bias_mant, shape, tag)


def lif_bias_units(bias_mant: Any, shape: tuple[int, ...], tag: str) -> Any:
    """lava-nc LIF's `bias_mant` for `tag`: integer mantissas (bias_exp 6) for fixed_pt, / 64 with bias_exp 0 else."""
    bias = np.broadcast_to(np.asarray(bias_mant), shape)
    return np.array(bias, dtype=np.int64) if tag == "fixed_pt" else np.array(bias, dtype=np.float64) / WEIGHT_SCALE
