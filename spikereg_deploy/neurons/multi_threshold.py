"""Multi-threshold soft-reset neuron (NetX type `CUBA-MT`, a spikereg extension): one graded spike per step.

Spiking-UNet (Li et al., 2024) fires at several thresholds at once (2, 1, 0.5, 0.25 x theta), subtracting each one
it crosses: its output is a multiple of theta / 4 up to 3.75 theta, i.e. a graded spike with a 4-bit payload. Here
the payload unit is the threshold `vThMant << 6` itself (Spiking-UNet's theta / 4), and a step sends

    k[t] = clamp(ceil(v[t] / theta) - 1, 0, maxPayload)      the multiples of theta the voltage lies strictly above
    v[t] -= k[t] * theta                                      reset by subtraction, the residue kept

with CUBA-SR's current, voltage, decays, bias and half-threshold start (`soft_reset.soft_reset_step`, the one
definition of both). The strict comparison is Loihi's `v > theta`, level by level: a voltage of exactly 2 theta sends
1 and keeps theta (sent next step), so for one level (maxPayload 1) this is CUBA-SR spike for spike. Spiking-UNet's
four thresholds are `payloadBits = 4, maxPayload = 15`; a QCFS teacher with L levels converts to `maxPayload = L`,
so that at T = 1 the payload is the teacher's quantized activation (`training/conversion.py`).

On Loihi 2 the payload rides on the spike message and each synapse multiplies it by its 8-bit weight: a graded
event is a multiply-accumulate, not a SynOp's add (`event_cost = "multiply"`, priced in `energy/`). Payloads are
unsigned and at most 8 bits wide here, the width an 8 x 8-bit integer multiplier takes (the integer-MAC cost model
prices that multiply; docs/hardware-facts.md, "Graded spikes").
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

from ..quantization import DECAY_UNITY, decay_from_fraction, threshold_mantissa
from .base import EventCost, NeuronParamError
from .soft_reset import SoftResetNeuron, soft_reset_step

#: Payload widths the synapse models take: 2 (1 would be a binary spike: CUBA-SR) to 8 bits, unsigned.
PAYLOAD_BITS_RANGE = (2, 8)


@dataclass(frozen=True)
class MultiThresholdNeuron(SoftResetNeuron):
    """CUBA-SR parameters plus the payload: `payload_bits` (message width) and `max_payload` (largest k sent per
    step, at most 2^payload_bits - 1); `vth_mant` is the payload unit, the lowest threshold."""

    netx_type: ClassVar[str] = "CUBA-MT"
    netx_fields: ClassVar[dict[str, tuple[str, type]]] = {
        **SoftResetNeuron.netx_fields, "payloadBits": ("payload_bits", int), "maxPayload": ("max_payload", int),
    }
    hyperparameters: ClassVar[tuple[str, ...]] = (*SoftResetNeuron.hyperparameters, "payload_bits", "max_payload")
    event_cost: ClassVar[EventCost] = "multiply"

    payload_bits: int = 4
    max_payload: int = 15
    graded: bool = True

    def __post_init__(self) -> None:
        lo, hi = PAYLOAD_BITS_RANGE
        self._check_int("payload_bits")
        if not lo <= self.payload_bits <= hi:
            raise NeuronParamError("payload_bits", f"payload_bits must be in [{lo}, {hi}], got {self.payload_bits}: "
                                                   f"the synapse models take unsigned graded payloads of {lo} to {hi} "
                                                   "bits (1 bit is a binary spike: CUBA-SR)")
        self._check_int("max_payload", 1, (1 << self.payload_bits) - 1)
        super().__post_init__()

    @classmethod
    def from_float(cls, threshold: float, current_decay: float, voltage_decay: float,  # type: ignore[override]
                   half_threshold_start: bool = False, payload_bits: int = 4,
                   max_payload: int = 0) -> MultiThresholdNeuron:
        """Quantize as CUBA-SR; `max_payload` 0 means the widest, 2^payload_bits - 1."""
        return cls(i_decay=decay_from_fraction(current_decay), v_decay=decay_from_fraction(voltage_decay),
                   vth_mant=threshold_mantissa(threshold), half_threshold_start=half_threshold_start,
                   payload_bits=payload_bits, max_payload=max_payload or (1 << int(payload_bits)) - 1)

    def step_biased(self, state: tuple[Any, ...], a_in: Any, bias_mant: Any) -> tuple[tuple[Any, ...], Any]:
        """One step: ((u, v), int64 payloads k in [0, max_payload]); see the module docstring."""
        return soft_reset_step(self, state, a_in, bias_mant, self.max_payload)

    def training_module(self) -> Any:
        """SLAYER-style module: exact payloads forward, a surrogate per level backward (`soft_reset_training`)."""
        from .soft_reset_training import SoftResetSlayerNeuron

        return SoftResetSlayerNeuron(self)

    def bias_training_module(self) -> Any:
        """As CUBA-SR's: a compartment fed only its bias is this model with iDecay 4096 fed the bias every step."""
        from .soft_reset_training import SoftResetSlayerNeuron

        return SoftResetSlayerNeuron(replace(self, i_decay=DECAY_UNITY))
