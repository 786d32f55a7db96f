"""Sigma-delta ReLU neuron (NetX type `SDNN`, lava-dl's own): it sends changes of its activation, not spikes.

Each step, in the integers of lava-nc 0.10's `lava.proc.sdn.SigmaDelta` fixed_pt model (`lava/proc/sdn/models.py`)
with the exponents lava-dl's netx gives it (`netx/hdf5.py`: `spike_exp = 6`, `state_exp = 6`):

    sigma[t]   = sigma[t-1] + a_in[t]                    sigma: the dendrite sums the deltas it receives
    act[t]     = relu(sigma[t] + (bias << 12))            the activation (lava-nc scales the bias by 2^(6+6))
    delta      = act[t] - act[t-1] + residue[t-1]
    sent       = delta where |delta| >= vThMant << 12, else 0      (>=, not >: lava-nc's and lava-dl's)
    residue[t] = delta - sent                             what was held back, sent once it reaches the threshold
    payload[t] = sent >> 6                                 state_exp: an arithmetic shift (floor), signed

Units: a payload p stands for the value p / 2^12 (lava-dl's `s_scale`, SLAYER's delta quantization step), a weight
mantissa w for w / 64, so a synaptic sum `a_in = sum(w * p)` and the states are values x 2^18, and the threshold
`vThMant << 12` is vThMant / 64 in value, as lava-dl's `v_th_mant = threshold * 64` says. The low 6 bits the
shift drops are lost, not kept in the residue: lava-nc's model does so (and so does SLAYER's `Delta`, which floors
its output to 1 / 2^12 after computing the residue), so the receiver's sum drifts by up to one payload unit per
event; this is the model's own arithmetic, kept here for bit-exactness with lava-nc.

The payload is signed and wide: `messageBits` (lava-dl's netx default 16) is the message width, and a payload that
does not fit a signed message of that width is refused (one line) rather than wrapped, since Loihi 2 could not
send it; the states are int64 here and int32 in lava-nc's CPU model (declared "precision 24" there but never
wrapped or saturated), so a state beyond int32 is refused too: whenever a step returns, every engine holds the
same integers. Unlike the CUBA models the input's current is not shifted by 6 and nothing wraps at 24 bits.

The static input. With input_mode "bias" the first layer's current (sum(w x_q) >> 8, in w-units: a binary
spike's) is its neurons' bias, `<< 12` as lava-nc scales a SigmaDelta bias: act = relu(bias) from the first step,
sent once, then only residues. With input_mode "analog" the same current, shifted by the same 12 bits
(`analog_input_shift`, the one place where this model differs from the project's other neurons: their a_in is in
w-units, this model's in payload units), arrives through the synapse at every step and sigma integrates it: the
network then computes t x its bias-mode activations (ReLU is positively homogeneous, there are no other biases),
sending about every step. So after T steps the readout's sum of deltas is the last activation in bias mode and T
times it in analog mode; displacement = readout_sum x readout_scale / T needs the gain x T in bias mode
(`training/conversion.py`).

A graded event multiplies the weight by the payload at every synapse it reaches (`event_cost = "multiply"`).
The Lava process is lava-nc's own `SigmaDelta` (same integers, its ports int32 of precision 24).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import SpikeRegError
from ..fixed_point import array_module
from ..quantization import THRESHOLD_MANT_MAX, THRESHOLD_MANT_MIN, threshold_mantissa
from .base import EventCost, NeuronModel, NeuronParamError, check_lava_tag

#: lava-dl netx's exponents for SDNN (`get_neuron_params`): the payload's 6 fraction bits beyond the weight's, and
#: the state's 6 bits beyond the payload's.
SPIKE_EXP = 6
STATE_EXP = 6
#: vThMant and the bias enter the state shifted by this (lava-nc's `vth * (1 << (spike_exp + state_exp))`).
PARAM_SHIFT = SPIKE_EXP + STATE_EXP
#: Message widths taken: 2 (sign and one bit) to 24 (the synapse and neuron ports, lava-nc int32 precision 24).
MESSAGE_BITS_RANGE = (2, 24)
#: lava-dl netx's `messageBits` when the file has none.
DEFAULT_MESSAGE_BITS = 16
#: The states are int32 in lava-nc's CPU model: anything at or beyond this would differ there.
INT32_LIMIT = 1 << 31
#: Activations lava-dl's sigma-delta blocks export and lava-nc's `SigmaDelta` computes (`ActivationMode.RELU`).
ACTIVATIONS = ("relu",)


@dataclass(frozen=True)
class SigmaDeltaNeuron(NeuronModel):
    """SDNN parameters: `vth_mant` (the delta threshold mantissa, vThMant), `activation` (relu), `payload_bits`
    (netx's `messageBits`, the signed message width)."""

    netx_type: ClassVar[str] = "SDNN"
    netx_fields: ClassVar[dict[str, tuple[str, type]]] = {
        "activation": ("activation", str), "vThMant": ("vth_mant", int), "messageBits": ("payload_bits", int),
    }
    netx_defaults: ClassVar[dict[str, Any]] = {"messageBits": DEFAULT_MESSAGE_BITS}
    state_names: ClassVar[tuple[str, ...]] = ("sigma", "activation", "residue")
    event_cost: ClassVar[EventCost] = "multiply"
    payload_unit: ClassVar[int] = 1 << PARAM_SHIFT
    #: The analog current (w-units, a binary spike's) enters a_in in payload units, as the bias does.
    analog_input_shift: ClassVar[int] = PARAM_SHIFT
    supports_bias: ClassVar[bool] = True
    #: Every SDNN output is a graded message; SDNN has no refractory period (base-class fields as constants).
    graded: ClassVar[bool] = True  # type: ignore[misc]
    ref_delay: ClassVar[int] = 1  # type: ignore[misc]

    vth_mant: int
    activation: str = "relu"
    payload_bits: int = DEFAULT_MESSAGE_BITS  # type: ignore[misc]

    def __post_init__(self) -> None:
        self._check_int("vth_mant", THRESHOLD_MANT_MIN, THRESHOLD_MANT_MAX)
        lo, hi = MESSAGE_BITS_RANGE
        self._check_int("payload_bits")
        if not lo <= self.payload_bits <= hi:
            raise NeuronParamError("payload_bits", f"messageBits must be in [{lo}, {hi}], got {self.payload_bits}: "
                                                   "signed payloads need a sign bit, and the synapse and neuron "
                                                   f"ports hold {hi} bits")
        if self.activation not in ACTIVATIONS:
            raise NeuronParamError("activation", f"activation {self.activation!r} is not supported (lava-nc's "
                                                 f"SigmaDelta computes {', '.join(ACTIVATIONS)})")

    @classmethod
    def from_float(cls, threshold: float) -> SigmaDeltaNeuron:  # type: ignore[override]
        """lava-dl's quantization: vThMant = int(threshold * 64); netx's default message width."""
        return cls(vth_mant=threshold_mantissa(threshold))

    @property
    def threshold_state(self) -> int:
        """The delta threshold in the states' units (vThMant << 12), compared with `>=`."""
        return self.vth_mant << PARAM_SHIFT

    @property
    def payload_limit(self) -> int:
        """The largest |payload| a signed message of `payload_bits` holds."""
        return (1 << (self.payload_bits - 1)) - 1

    def step(self, state: tuple[Any, ...], a_in: Any) -> tuple[tuple[Any, ...], Any]:
        """One step without bias: ((sigma, act, residue), a_in) -> (new state, int64 signed payloads)."""
        return self.step_biased(state, a_in, 0)

    def step_biased(self, state: tuple[Any, ...], a_in: Any, bias_mant: Any) -> tuple[tuple[Any, ...], Any]:
        """One step with a per-neuron bias mantissa (input_mode "bias": the static input current, entering the
        activation as `bias << 12`, as lava-nc's SigmaDelta scales its bias); see the module docstring."""
        sigma, act, residue = state
        xp = array_module(sigma)
        sigma = sigma + a_in
        new_act = sigma + bias_mant * (1 << PARAM_SHIFT)
        new_act = xp.where(new_act > 0, new_act, xp.zeros_like(new_act))
        delta = new_act - act + residue
        sent = xp.where(abs(delta) >= self.threshold_state, delta, xp.zeros_like(delta))
        payload = sent >> STATE_EXP
        self._check_range(sigma, delta, payload, a_in)
        return (sigma, new_act, delta - sent), payload

    def _check_range(self, sigma: Any, delta: Any, payload: Any, a_in: Any) -> None:
        """Refuse integers lava-nc's int32 states (and the int32 synaptic input its port receives) or the message
        width could not hold (see the module docstring)."""
        if np.prod(tuple(sigma.shape)) == 0:
            return
        synaptic = int(abs(a_in).max()) if hasattr(a_in, "max") else abs(int(a_in))
        state = max(int(abs(sigma).max()), int(abs(delta).max()), synaptic)
        if state >= INT32_LIMIT:
            raise SpikeRegError(f"an SDNN state reached {state}, beyond lava-nc's int32 sigma-delta registers: "
                                "lower the weights or the input")
        largest = int(abs(payload).max())
        if largest > self.payload_limit:
            raise SpikeRegError(f"an SDNN payload of {largest} does not fit the {self.payload_bits}-bit signed "
                                f"message (messageBits; at most {self.payload_limit}): raise messageBits (<= 24) or "
                                "lower the activations")

    def training_module(self) -> Any:
        """A torch module computing `step`'s payloads exactly, with lava-dl's sigma-delta gradient."""
        from .sigma_delta_training import SigmaDeltaSlayerNeuron

        return SigmaDeltaSlayerNeuron(self)

    def bias_training_module(self) -> Any:
        """The input-fed layer with input_mode "bias": its input (the static current, fed every step) is the bias."""
        from .sigma_delta_training import SigmaDeltaSlayerNeuron

        return SigmaDeltaSlayerNeuron(self, biased=True)

    def lava_process(self, shape: tuple[int, ...], tag: str, name: str, bias_mant: Any = 0) -> Any:
        """lava-nc's own `SigmaDelta` (ReLU), as netx builds it: fixed_pt with netx's exponents computes exactly
        `step_biased`; floating_pt the same dynamics in float (a_in / 64 units: exponents 0, threshold and bias
        scaled by 2^6 here, the payload not floored)."""
        from lava.proc.sdn.process import ActivationMode, SigmaDelta

        check_lava_tag(tag)
        bias = self._bias_argument(bias_mant, shape, tag)
        if tag == "fixed_pt":
            return SigmaDelta(shape=shape, vth=self.vth_mant, bias=bias, act_mode=ActivationMode.RELU,
                              spike_exp=SPIKE_EXP, state_exp=STATE_EXP, name=name)
        scale = float(1 << SPIKE_EXP)
        return SigmaDelta(shape=shape, vth=self.vth_mant * scale, bias=bias, act_mode=ActivationMode.RELU,
                          spike_exp=0, state_exp=0, name=name)

    @staticmethod
    def _bias_argument(bias_mant: Any, shape: tuple[int, ...], tag: str) -> Any:
        """SigmaDelta's `bias` argument: the mantissas for fixed_pt (netx's exponents); x 2^6 in the float model."""
        bias = np.array(np.broadcast_to(np.asarray(bias_mant, dtype=np.int64), shape))
        return bias if tag == "fixed_pt" else bias * float(1 << SPIKE_EXP)

    def lava_bias_units(self, bias_mant: Any, shape: tuple[int, ...], tag: str) -> Any:
        """What SigmaDelta's `bias` Var holds: its constructor scales the argument by 2^(spike_exp + state_exp)
        (lava-nc 0.10.0, `proc/sdn/process.py`), 2^12 for fixed_pt and 1 for the float model's zero exponents."""
        bias = self._bias_argument(bias_mant, shape, tag)
        return bias << (SPIKE_EXP + STATE_EXP) if tag == "fixed_pt" else bias
