"""Integrate-and-fire (NetX type `IF`, a spikereg extension): no current state, no leak, reset to zero.

    v[t] = clip(v[t-1] + wrap(a_in[t] << 6))      24-bit: the input wraps as a current would, v saturates
    spike[t] = v[t] > (vThMant << 6);  v[t] = 0 where spiking

This is CUBA with iDecay = 4096 (the current forgets everything, so it is just this step's input) and vDecay = 0
(no leak), which is how every engine runs it bit-exactly: SLAYER's CUBA neuron with current_decay = 1 and
voltage_decay = 0, and lava-nc's `LIF` with du = 4095 (it decays by du + 1) and dv = 0. The input still passes
through that LIF's 24-bit current register, so an input beyond +-2^23 after the shift wraps there; the step keeps
that so the integers equal Lava's even then. The model has one state array instead of two.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..fixed_point import array_module, saturate_state, wrap_state
from ..quantization import (
    ACTIVATION_SHIFT,
    DECAY_UNITY,
    INPUT_BIAS_EXP,
    THRESHOLD_SHIFT,
    WEIGHT_SCALE,
    threshold_mantissa,
)
from .base import NeuronModel, check_lava_tag
from .cuba import lif_bias_units


@dataclass(frozen=True)
class IfNeuron(NeuronModel):
    """IF neuron parameters: the threshold mantissa (compared after `<< 6` against the 24-bit voltage) and the
    fields every binary-spike model carries."""

    netx_type: ClassVar[str] = "IF"
    netx_fields: ClassVar[dict[str, tuple[str, type]]] = {
        "vThMant": ("vth_mant", int), "refDelay": ("ref_delay", int), "gradedSpike": ("graded", bool),
    }
    state_names: ClassVar[tuple[str, ...]] = ("voltage",)
    supports_bias: ClassVar[bool] = True

    vth_mant: int
    ref_delay: int = 1
    graded: bool = False

    def __post_init__(self) -> None:
        self._check_spike_fields()

    @classmethod
    def from_float(cls, threshold: float) -> IfNeuron:  # type: ignore[override]
        """Quantize a SLAYER float threshold (IF has no decays to quantize)."""
        return cls(vth_mant=threshold_mantissa(threshold))

    def step(self, state: tuple[Any, ...], a_in: Any) -> tuple[tuple[Any, ...], Any]:
        """One step: (v,), integer synaptic sum -> ((v,), spikes)."""
        return self.step_biased(state, a_in, 0)

    def step_biased(self, state: tuple[Any, ...], a_in: Any, bias_mant: Any) -> tuple[tuple[Any, ...], Any]:
        """One step with lava-nc's bias added to the voltage: `v = v + wrap(a_in << 6) + (bias_mant << 6)`."""
        (v,) = state
        xp = array_module(v)
        v_new = saturate_state(v + wrap_state(a_in * (1 << ACTIVATION_SHIFT)) + bias_mant * (1 << INPUT_BIAS_EXP))
        spikes = v_new > (self.vth_mant << THRESHOLD_SHIFT)
        v_new = xp.where(spikes, xp.zeros_like(v_new), v_new)
        return (v_new,), spikes

    def training_module(self) -> Any:
        """SLAYER's CUBA neuron that computes IF: the current is this step's input, the voltage never leaks."""
        from lava.lib.dl.slayer.neuron import cuba

        return cuba.Neuron(threshold=self.threshold, current_decay=1.0, voltage_decay=0.0, shared_param=True,
                           persistent_state=False, requires_grad=False)

    def bias_training_module(self) -> Any:
        """IF's SLAYER neuron already has current_decay = 1: fed the bias every step it computes v = v + bias."""
        return self.training_module()

    def lava_process(self, shape: tuple[int, ...], tag: str, name: str, bias_mant: Any = 0) -> Any:
        """lava-nc's `LIF` without current memory or leak (fixed_pt decays u by du + 1 = 4096); `bias_mant` as in
        CUBA."""
        from lava.proc.lif.process import LIF

        check_lava_tag(tag)
        if tag == "fixed_pt":
            return LIF(shape=shape, du=DECAY_UNITY - 1, dv=0, vth=self.vth_mant,
                       bias_mant=self.lava_bias_units(bias_mant, shape, tag), bias_exp=INPUT_BIAS_EXP, name=name)
        return LIF(shape=shape, du=1.0, dv=0.0, vth=self.vth_mant / WEIGHT_SCALE,
                   bias_mant=self.lava_bias_units(bias_mant, shape, tag), bias_exp=0.0, name=name)

    lava_bias_var: ClassVar[str] = "bias_mant"

    def lava_bias_units(self, bias_mant: Any, shape: tuple[int, ...], tag: str) -> Any:
        """As CUBA's (the same lava-nc LIF)."""
        return lif_bias_units(bias_mant, shape, tag)
