"""The soft-reset neuron for training (SLAYER has none): exact integer spikes forward, SLAYER's surrogate backward.

A torch module over (N, C, ..., T), time last, as SLAYER's neurons are, fed in SLAYER's float units (weights are
mantissa / 64, so the synaptic input is the integer input / 64; states are the 24-bit integers / 2^12). Forward, in
eval and in training mode alike, it rounds the input to the integer grid and runs `SoftResetNeuron.step`, so its
spikes are the reference engine's and Lava's, wrap and saturation included. Backward it is SLAYER's CUBA neuron: the
voltage is the linear leaky filter of the input (reset not differentiated, as SLAYER's `leaky_integrator` does) and
each spike's derivative is SLAYER's surrogate, `Spike` with CUBA's gradient width and scale (`tau_rho x 100`,
`scale_rho x 0.1`: scale/2/tau exp(-|v - theta|/tau)), evaluated at the exact pre-reset voltage.

Kept apart from `soft_reset.py` because it imports torch at module level; `SoftResetNeuron.training_module` loads it.
"""
from __future__ import annotations

import torch

from ..quantization import DECAY_UNITY, WEIGHT_SCALE
from .soft_reset import STATE_SCALE, SoftResetNeuron


class SoftResetSlayerNeuron(torch.nn.Module):
    """Trainable-network stand-in for a SLAYER neuron: same attributes the U-Net touches (`_threshold`, `tau_rho`,
    `shape`), integers from the registry model, surrogate gradient from SLAYER."""

    def __init__(self, neuron: SoftResetNeuron, tau_grad: float = 1.0, scale_grad: float = 1.0) -> None:
        super().__init__()
        self.i_decay, self.v_decay = neuron.i_decay, neuron.v_decay
        self.half_threshold_start = neuron.half_threshold_start
        self._threshold = neuron.threshold  # float, on the mantissa grid; calibration overwrites it
        self.tau_rho = tau_grad * self._threshold  # SLAYER: surrogate width = tau_grad x threshold
        self.scale_rho = scale_grad
        self.shape: tuple[int, ...] | None = None  # SLAYER's neurons lock onto a shape; kept for the same API

    @property
    def threshold(self) -> float:
        return self._threshold

    def integer_model(self) -> SoftResetNeuron:
        """The registry model with the current threshold (which conversion's calibration may have changed)."""
        return SoftResetNeuron(self.i_decay, self.v_decay, int(round(self._threshold * WEIGHT_SCALE)),
                               half_threshold_start=self.half_threshold_start)

    def forward(self, synaptic_input: torch.Tensor) -> torch.Tensor:
        """(N, C, ..., T) float input current in weight units -> spikes (same shape and dtype, 0 or 1)."""
        self.shape = tuple(synaptic_input.shape[1:-1])
        spikes, voltage = self._integer_trace(synaptic_input.detach())
        spikes = spikes.to(synaptic_input.dtype)
        if not (torch.is_grad_enabled() and synaptic_input.requires_grad):
            return spikes
        from lava.lib.dl.slayer.neuron.cuba import SCALE_RHO_MULT, TAU_RHO_MULT
        from lava.lib.dl.slayer.spike.spike import Spike

        linear = self._linear_voltage(synaptic_input)
        exact_v = voltage.to(synaptic_input.dtype) / STATE_SCALE
        at_exact = linear + (exact_v - linear).detach()  # the exact voltage's value, the linear filter's gradient
        surrogate = Spike.apply(at_exact, self._threshold, self.tau_rho * TAU_RHO_MULT,
                                self.scale_rho * SCALE_RHO_MULT, False, 0, 1)
        return spikes + (surrogate - surrogate.detach())  # x - x is exactly 0: the forward stays the integer one

    def _integer_trace(self, synaptic_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spikes (bool) and pre-reset voltages (int64) of the integer step over the last (time) axis."""
        model = self.integer_model()
        a_in = torch.round(synaptic_input.double() * WEIGHT_SCALE).to(torch.int64)
        state = model.init_state(tuple(a_in.shape[:-1]), torch)
        spikes, voltages = [], []
        for t in range(a_in.shape[-1]):
            state, fired = model.step(state, a_in[..., t])
            spikes.append(fired)
            voltages.append(state[1] + fired * model.threshold_state)
        return torch.stack(spikes, -1), torch.stack(voltages, -1)

    def _linear_voltage(self, synaptic_input: torch.Tensor) -> torch.Tensor:
        """The voltage without reset or integer rounding: what SLAYER differentiates (its leaky integrators)."""
        keep_u, keep_v = 1 - self.i_decay / DECAY_UNITY, 1 - self.v_decay / DECAY_UNITY
        current = torch.zeros_like(synaptic_input[..., 0])
        voltage = torch.zeros_like(current)
        out = []
        for t in range(synaptic_input.shape[-1]):
            current = keep_u * current + synaptic_input[..., t]
            voltage = keep_v * voltage + current
            out.append(voltage)
        return torch.stack(out, -1)
