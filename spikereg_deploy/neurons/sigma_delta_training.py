"""The sigma-delta neuron for training: exact integer payloads forward, lava-dl's sigma-delta gradient backward.

A torch module over (N, C, ..., T), time last, fed in SLAYER's float units (the synaptic input is the integer a_in
/ 64, as for every model here). Forward, in eval and training mode alike, it rounds the input to the integer grid
and runs `SigmaDeltaNeuron.step`, so its payloads are the reference engine's and Lava's. Backward it is lava-dl's
`slayer.neuron.sigma_delta`: sigma is a cumulative sum, then the ReLU, then the delta unit, whose gradient is
straight through the threshold (`axon/delta.py`: grad_x[t] = grad_y[t] - grad_y[t+1]; the threshold is not
learned, lava-dl's `requires_grad=False` default). In the payloads' units (a_in / 64 summed is act / 64, the
payload before the floor) that is y = diff(relu(cumsum(x))) over time. lava-dl's own module is not used forward:
its float32 states lose the integers once they pass 2^24 (values x 2^18 here), and its delta quantization floors
in float.

The biased module (input_mode "bias") takes its input, the static current fed at every step, as the bias: no
synaptic input, act = relu(bias << 12), i.e. relu(4096 x) in these units, sent at the first step.

Kept apart from `sigma_delta.py` because it imports torch at module level; the model's `training_module` loads it.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from ..quantization import WEIGHT_SCALE
from .sigma_delta import PARAM_SHIFT, SigmaDeltaNeuron


class SigmaDeltaSlayerNeuron(torch.nn.Module):
    """Stand-in for lava-dl's sigma-delta neuron with the attributes the U-Net touches (`_threshold`, `tau_rho`,
    `shape`); integers from the registry model."""

    def __init__(self, neuron: SigmaDeltaNeuron, biased: bool = False) -> None:
        super().__init__()
        self.neuron = neuron
        self.biased = biased
        self._threshold = neuron.threshold  # float, on the mantissa grid; conversion may overwrite it
        self.tau_rho = self._threshold  # unused (no surrogate spike); kept because set_threshold writes it
        self.shape: tuple[int, ...] | None = None

    @property
    def threshold(self) -> float:
        return self._threshold

    def integer_model(self) -> SigmaDeltaNeuron:
        """The registry model with the current threshold."""
        return replace(self.neuron, vth_mant=int(round(self._threshold * WEIGHT_SCALE)))

    def forward(self, synaptic_input: torch.Tensor) -> torch.Tensor:
        """(N, C, ..., T) float input in weight units -> payloads (same shape and dtype)."""
        self.shape = tuple(synaptic_input.shape[1:-1])
        with torch.no_grad():
            payloads = self._integer_trace(synaptic_input)
        if not (torch.is_grad_enabled() and synaptic_input.requires_grad):
            return payloads
        if self.biased:
            act = torch.relu(synaptic_input * (1 << PARAM_SHIFT))  # bias << 12 over the payload's / 64
        else:
            act = torch.relu(torch.cumsum(synaptic_input, dim=-1))
        linear = act - torch.nn.functional.pad(act[..., :-1], (1, 0))
        return payloads + (linear - linear.detach())  # x - x is exactly 0: the forward stays the integer one

    def _integer_trace(self, synaptic_input: torch.Tensor) -> torch.Tensor:
        """The integer step over the last (time) axis, one step at a time."""
        model = self.integer_model()
        state = model.init_state(tuple(synaptic_input.shape[:-1]), torch)
        out = torch.empty_like(synaptic_input)
        zero = torch.zeros((), dtype=torch.int64)
        for t in range(synaptic_input.shape[-1]):
            a_in = torch.round(synaptic_input[..., t].double() * WEIGHT_SCALE).to(torch.int64)
            if self.biased:
                state, payload = model.step_biased(state, zero, a_in)
            else:
                state, payload = model.step(state, a_in)
            out[..., t] = payload.to(out.dtype)
        return out
