"""The spiking 3-D registration U-Net in SLAYER: neurons from their model's `training_module`, synapses from
`synapses.py`.

The layer graph comes from `spikereg_deploy.unet.build_unet_spec`, so the trained model, the exported `.net` and every
simulator share one description. Run in eval mode, this forward is the quantized model: the SLAYER neuron each model
builds computes Loihi's integers exactly (state scale 2^12, 8-bit weight mantissas / 64), and the two parts SLAYER
lacks are made exact here: the analog input current (8-bit payload, sum >> 8) and the readout's integer sum.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch

from spikereg_deploy import fixed_point as fx
from spikereg_deploy.engine import analog_shift
from spikereg_deploy.network import NetworkSpec
from spikereg_deploy.quantization import threshold_mantissa
from spikereg_deploy.unet import UNetConfig, build_unet_spec

from .synapses import Conv3dSynapse, ConvTranspose3dSynapse


@dataclass
class ForwardResult:
    displacement: torch.Tensor  # (N, 3, D, H, W) voxels
    spikes: dict[str, torch.Tensor]  # layer -> (N, C, D, H, W, T)
    readout_sum: torch.Tensor  # (N, 3, D, H, W) int64: sum over T of the readout's integer synaptic input


class SpikingUNet(torch.nn.Module):
    """SpikeReg-style spiking U-Net: analog input current, spiking encoder/decoder (`config.neuron_model`, CUBA by
    default), non-spiking readout."""

    def __init__(self, config: UNetConfig | None = None, weight_scale: float = 2.0) -> None:
        super().__init__()
        self.config = config or UNetConfig()
        self.spec: NetworkSpec = build_unet_spec(self.config)
        self.synapses = torch.nn.ModuleDict()
        self.neurons = torch.nn.ModuleDict()
        for layer in self.spec.layers[1:]:
            cls = ConvTranspose3dSynapse if layer.kind == "convT" else Conv3dSynapse
            self.synapses[layer.name] = cls(self.spec.weight_shape(layer.name), layer.stride, layer.padding,
                                            layer.output_padding, weight_scale)
            if layer.neuron is not None and self._biased(layer.name):
                self.neurons[layer.name] = layer.neuron.bias_training_module()
            elif layer.neuron is not None:
                self.neurons[layer.name] = layer.neuron.training_module()
        self._neuron_shape: tuple[int, ...] | None = None

    def _biased(self, name: str) -> bool:
        """input_mode "bias": the input-fed layer's neurons take the static current as their bias. The forward is
        the same (the current is fed at every step); the neuron module differs (`bias_training_module`)."""
        return self.spec.input_mode == "bias" and self.spec.layer(name).inputs == (self.spec.input_layer.name,)

    def _reset_neuron_shapes(self, shape: tuple[int, ...]) -> None:
        """SLAYER neurons lock onto their first input's shape; a new volume size must unlock them."""
        if self._neuron_shape != shape:
            for neuron in self.neurons.values():
                neuron.shape = None
            self._neuron_shape = shape

    def _analog_current(self, name: str, image: torch.Tensor, gain: torch.Tensor | None = None) -> torch.Tensor:
        """First-layer current: exact Loihi integers forward, the float conv's gradient (times `gain`) backward."""
        syn = self.synapses[name]
        w = syn.quantized_weight()
        # into the neuron model's a_in units (sigma-delta: 2^12); a bias is the current as it is (bias mantissas)
        shift = 0 if self._biased(name) else analog_shift(self.spec.layer(name))
        smooth = syn.conv(image, w) * (1 << shift) if gain is None else syn.conv(image, w) * gain * (1 << shift)
        with torch.no_grad():
            payload = fx.quantize_input(image.double())
            total = syn.conv(payload.double(), (w.double() * fx.WEIGHT_SCALE).round())
            exact = fx.analog_current(total.round().to(torch.int64), shift).to(smooth.dtype) / fx.WEIGHT_SCALE
        return smooth + (exact - smooth).detach()

    def _reconfigure(self, **changes: object) -> None:
        """Change config fields and rebuild the spec from them, so the export always describes this model."""
        self.config = replace(self.config, **changes)
        self.spec = build_unet_spec(self.config)

    def set_readout_gain(self, gain: float) -> None:
        """Change the host-side readout gain (a float applied to the integer readout sum, exported as is)."""
        self._reconfigure(readout_gain=float(gain))

    def set_threshold(self, name: str, threshold: float) -> None:
        """Change one layer's threshold (calibration); quantized to the mantissa grid as SLAYER does."""
        neuron = self.neurons[name]
        neuron._threshold = threshold_mantissa(threshold) / fx.WEIGHT_SCALE
        neuron.tau_rho = neuron._threshold  # SLAYER sets the surrogate width to tau_grad (1) x threshold

    def threshold_of(self, name: str) -> float:
        """A layer's threshold as a float (the config's; the neurons and the export use its mantissa grid)."""
        return float(self.config.thresholds.get(name, self.config.threshold))

    def set_thresholds(self, thresholds: Mapping[str, float]) -> None:
        """Change layer thresholds for good: the config keeps the floats, so learned steps smaller than one
        mantissa level accumulate, while the neurons and the spec (hence the export) use the quantized values."""
        self._reconfigure(thresholds={**self.config.thresholds, **thresholds})
        for name, threshold in thresholds.items():
            self.set_threshold(name, threshold)

    def forward(self, image: torch.Tensor, stop_after: str | None = None,
                threshold_probes: Mapping[str, torch.Tensor] | None = None) -> ForwardResult:
        """image: (N, C, D, H, W) intensities in [0, 1]; returns the displacement (mean over T) and all spikes.

        `stop_after` ends the pass after that layer (calibration): the displacement is then empty.
        `threshold_probes` (layer -> zero-valued scalar) give each layer's log threshold a gradient: SLAYER's
        threshold is a constant, but raising it by e^p spikes like scaling the layer's weights by e^-p (the state
        is linear in the input up to the threshold), so the input is multiplied by e^(p.detach() - p): exactly 1
        forward, and backward the gradient of a common scale on the layer's weights.
        """
        spec, t_steps = self.spec, self.config.time_steps
        if image.ndim != 5 or image.shape[1] != spec.input_channels:
            raise ValueError(f"expected (N, {spec.input_channels}, D, H, W), got {tuple(image.shape)}")
        spec.geometry(tuple(image.shape[2:]))  # raises a SpikeRegError for sizes the net cannot take
        self._reset_neuron_shapes(tuple(image.shape[2:]))
        outputs: dict[str, torch.Tensor] = {}
        readout_float = None
        for layer in spec.layers[1:]:
            gain: torch.Tensor | None = None
            if threshold_probes is not None and layer.name in threshold_probes:
                probe = threshold_probes[layer.name]
                gain = torch.exp(probe.detach() - probe)
            if layer.inputs == (spec.input_layer.name,):
                current = self._analog_current(layer.name, image, gain)
                syn_out = current[..., None].expand(*current.shape, t_steps)
            else:
                src = torch.cat([outputs[s] for s in layer.inputs], dim=1)
                syn_out = self.synapses[layer.name](src)
                if gain is not None:
                    syn_out = syn_out * gain
            if layer.kind == "readout":
                readout_float = syn_out
                continue
            outputs[layer.name] = self.neurons[layer.name](syn_out)
            if layer.name == stop_after:
                empty = torch.zeros(0, device=image.device)
                return ForwardResult(empty, outputs, empty.to(torch.int64))
        assert readout_float is not None
        with torch.no_grad():
            readout_sum = torch.round(readout_float.double().sum(-1) * fx.WEIGHT_SCALE).to(torch.int64)
        displacement = readout_float.mean(-1) * self.config.readout_gain
        return ForwardResult(displacement, outputs, readout_sum)

    def integer_weights(self) -> dict[str, np.ndarray]:
        """Per-layer weight mantissas in the .net layouts (conv: Cout,Cin,k,k,k; convT: Cin,Cout,k,k,k)."""
        return {name: syn.integer_weight() for name, syn in self.synapses.items()}

    def load_integer_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Set float weights to mantissa / 64 so quantization reproduces the given integers exactly."""
        with torch.no_grad():
            for name, syn in self.synapses.items():
                w = torch.as_tensor(np.asarray(weights[name], dtype=np.float64) / fx.WEIGHT_SCALE)
                if w.shape != syn.weight.shape:
                    raise ValueError(f"layer {name}: weight shape {tuple(w.shape)} != {tuple(syn.weight.shape)}")
                syn.weight.copy_(w.to(syn.weight.dtype))


def exact_displacement(result: ForwardResult, spec: NetworkSpec) -> np.ndarray:
    """Displacement from the integer readout sum, in float64 exactly as the simulators compute it."""
    return result.readout_sum.numpy().astype(np.float64) * (spec.readout_scale / spec.time_steps)


def seeded_model(config: UNetConfig | None = None, seed: int = 0) -> SpikingUNet:
    """The default architecture with reproducible random weights."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return SpikingUNet(config)
    finally:
        torch.random.set_rng_state(gen_state)


__all__ = ["SpikingUNet", "ForwardResult", "exact_displacement", "seeded_model"]
