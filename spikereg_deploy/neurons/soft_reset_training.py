"""The soft-reset neurons for training (SLAYER has none): exact integer spikes forward, SLAYER's surrogate backward.

A torch module over (N, C, ..., T), time last, as SLAYER's neurons are, fed in SLAYER's float units (weights are
mantissa / 64, so the synaptic input is the integer input / 64; states are the 24-bit integers / 2^12). Forward, in
eval and in training mode alike, it rounds the input to the integer grid and runs `SoftResetNeuron.step`, so its
spikes are the reference engine's and Lava's, wrap and saturation included. Backward it is SLAYER's CUBA neuron: the
voltage is the linear leaky filter of the input (reset not differentiated, as SLAYER's `leaky_integrator` does) and
each spike's derivative is SLAYER's surrogate, `Spike` with CUBA's gradient width and scale (`tau_rho x 100`,
`scale_rho x 0.1`: scale/2/tau exp(-|v - theta|/tau)), evaluated at the exact pre-reset voltage. The multi-threshold
model (CUBA-MT) sends k = the levels crossed: its surrogate is the sum of that derivative over its levels j theta,
j = 1 .. maxPayload (each level a SLAYER spike at its own threshold), and its output is the payload k.

Kept apart from `soft_reset.py` because it imports torch at module level; `SoftResetNeuron.training_module` loads it.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from ..quantization import DECAY_UNITY, WEIGHT_SCALE
from .soft_reset import STATE_SCALE, SoftResetNeuron


class SoftResetSlayerNeuron(torch.nn.Module):
    """Trainable-network stand-in for a SLAYER neuron: same attributes the U-Net touches (`_threshold`, `tau_rho`,
    `shape`), integers from the registry model, surrogate gradient from SLAYER."""

    def __init__(self, neuron: SoftResetNeuron, tau_grad: float = 1.0, scale_grad: float = 1.0) -> None:
        super().__init__()
        self.neuron = neuron
        self.levels = int(getattr(neuron, "max_payload", 1))  # graded models send up to this many thresholds
        self._threshold = neuron.threshold  # float, on the mantissa grid; calibration overwrites it
        self.tau_rho = tau_grad * self._threshold  # SLAYER: surrogate width = tau_grad x threshold
        self.scale_rho = scale_grad
        self.shape: tuple[int, ...] | None = None  # SLAYER's neurons lock onto a shape; kept for the same API

    @property
    def threshold(self) -> float:
        return self._threshold

    def integer_model(self) -> SoftResetNeuron:
        """The registry model with the current threshold (which conversion's calibration may have changed)."""
        return replace(self.neuron, vth_mant=int(round(self._threshold * WEIGHT_SCALE)))

    def forward(self, synaptic_input: torch.Tensor) -> torch.Tensor:
        """(N, C, ..., T) float input current in weight units -> spikes or payloads (same shape and dtype)."""
        self.shape = tuple(synaptic_input.shape[1:-1])
        differentiate = torch.is_grad_enabled() and synaptic_input.requires_grad
        with torch.no_grad():
            spikes, exact_v = self._integer_trace(synaptic_input, with_voltage=differentiate)
        if not differentiate:
            return spikes
        from lava.lib.dl.slayer.neuron.cuba import SCALE_RHO_MULT, TAU_RHO_MULT
        from lava.lib.dl.slayer.spike.spike import Spike

        assert exact_v is not None
        linear = self._linear_voltage(synaptic_input)
        at_exact = linear + (exact_v - linear).detach()  # the exact voltage's value, the linear filter's gradient
        surrogate = sum(Spike.apply(at_exact, level * self._threshold, self.tau_rho * TAU_RHO_MULT,
                                    self.scale_rho * SCALE_RHO_MULT, False, 0, 1)
                        for level in range(1, self.levels + 1))
        return spikes + (surrogate - surrogate.detach())  # x - x is exactly 0: the forward stays the integer one

    def _integer_trace(self, synaptic_input: torch.Tensor,
                       with_voltage: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Spikes and (if asked) pre-reset voltages (float, SLAYER's units: exact, a 24-bit integer / 2^12 fits
        float32) of the integer step over the last (time) axis; one step at a time, to hold no int64 copy of T."""
        model = self.integer_model()
        dtype = synaptic_input.dtype
        state = model.init_state(tuple(synaptic_input.shape[:-1]), torch)
        spikes = torch.empty_like(synaptic_input)
        voltages = torch.empty_like(synaptic_input) if with_voltage else None
        for t in range(synaptic_input.shape[-1]):
            a_in = torch.round(synaptic_input[..., t].double() * WEIGHT_SCALE).to(torch.int64)
            state, fired = model.step(state, a_in)
            spikes[..., t] = fired.to(dtype)
            if voltages is not None:
                voltages[..., t] = (state[1] + fired * model.threshold_state).to(dtype) / STATE_SCALE
        return spikes, voltages

    def _linear_voltage(self, synaptic_input: torch.Tensor) -> torch.Tensor:
        """The voltage without reset or integer rounding: what SLAYER differentiates (its leaky integrators)."""
        keep_u, keep_v = 1 - self.neuron.i_decay / DECAY_UNITY, 1 - self.neuron.v_decay / DECAY_UNITY
        current = torch.zeros_like(synaptic_input[..., 0])
        voltage = torch.zeros_like(current)
        out = []
        for t in range(synaptic_input.shape[-1]):
            current = keep_u * current + synaptic_input[..., t]
            voltage = keep_v * voltage + current
            out.append(voltage)
        return torch.stack(out, -1)
