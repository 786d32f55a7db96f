"""The SpikeReg U-Net architecture as a `NetworkSpec`: one place that names the layers and wires the skips.

Layout (defaults): analog 2-channel input (fixed, moving) -> enc0 (stride 1) -> enc1..enc3 (stride-2 convs) ->
bottleneck -> dec0..dec2 (stride-2 transposed convs, each later one fed by [previous decoder, encoder skip]) ->
dec3 (stride-1 conv on [dec2, enc0]) -> non-spiking readout (3 channels, mean over T = displacement in voxels).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import SpikeRegError
from .network import REGISTRATION_INPUT_MODES, LayerSpec, NetworkSpec
from .neurons import NeuronModel, NeuronParamError, registry

#: The ANN teacher's activations (`AnnUNet`): ReLU, or QCFS's clip-floor-shift (`training/qcfs.py`).
ACTIVATIONS = ("relu", "qcfs")


@dataclass(frozen=True)
class UNetConfig:
    """Architecture and neuron hyper-parameters; stored in checkpoints so loading rebuilds the exact model."""

    encoder: tuple[int, ...] = (16, 32, 64, 128)
    decoder: tuple[int, ...] = (64, 32, 16, 16)
    bottleneck: bool = True
    time_steps: int = 4
    input_channels: int = 2
    kernel: int = 3
    up_kernel: int = 2
    readout_kernel: int = 3
    threshold: float = 1.0
    current_decay: float = 0.25
    voltage_decay: float = 0.03
    readout_gain: float = 1.0
    thresholds: Mapping[str, float] = field(default_factory=dict)
    #: NetX type of every spiking layer's neuron (`spikereg_deploy.neurons`); checkpoints without it are CUBA.
    #: The decays above are read only by models that have them (`hyperparameters`: CUBA's, not IF's).
    neuron_model: str = "CUBA"
    #: Start every inference with the membrane at half the threshold (QCFS's shift); only for models that have it
    #: (`CUBA-SR`, which then needs voltage_decay = 0).
    half_threshold_start: bool = False
    #: "analog" (the input's synaptic sum enters the first layer's current at every step) or "bias" (computed once
    #: per inference, held as the first layer's neuron bias; `network.INPUT_MODES`, docs/netx-format.md).
    input_mode: str = "analog"
    #: The ANN teacher's activation: "relu", or "qcfs" (clip-floor-shift with `activation_levels` levels and a
    #: trainable clip per layer, `spikereg_deploy.training.qcfs`). A converted SNN keeps its teacher's values.
    activation: str = "relu"
    activation_levels: int = 0
    #: Graded (multi-threshold, CUBA-MT) neurons only: payload width in bits and the largest payload sent per step
    #: (0: conversion picks the teacher's QCFS levels, or 2^payload_bits - 1).
    payload_bits: int = 4
    max_payload: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "encoder", tuple(int(c) for c in self.encoder))
        object.__setattr__(self, "decoder", tuple(int(c) for c in self.decoder))
        object.__setattr__(self, "thresholds", dict(self.thresholds))
        if len(self.encoder) < 1 or any(c <= 0 for c in self.encoder + self.decoder):
            raise SpikeRegError("encoder/decoder channels must be positive and the encoder non-empty")
        if len(self.decoder) < len(self.encoder) - 1:
            raise SpikeRegError(
                f"decoder needs at least {len(self.encoder) - 1} stages to undo {len(self.encoder) - 1} downsamplings"
            )
        if self.kernel % 2 != 1 or self.readout_kernel % 2 != 1:
            raise SpikeRegError("kernel sizes must be odd (same padding)")
        if self.up_kernel < 2:
            raise SpikeRegError("up_kernel must be >= 2 (stride-2 transposed convs)")
        if self.time_steps <= 0 or self.input_channels <= 0:
            raise SpikeRegError("time_steps and input_channels must be positive")
        if not 0 < self.current_decay <= 1 or not 0 <= self.voltage_decay <= 1:
            raise SpikeRegError("decays must be in (0, 1] (current) and [0, 1] (voltage)")
        if self.threshold <= 0 or self.readout_gain <= 0:
            raise SpikeRegError("threshold and readout_gain must be positive")
        model = registry.neuron_model(self.neuron_model)  # a one-line error naming the known types
        if self.input_mode not in REGISTRATION_INPUT_MODES:
            raise SpikeRegError(f"input_mode must be one of {', '.join(REGISTRATION_INPUT_MODES)}, "
                                f"got {self.input_mode!r}")
        if self.input_mode == "bias" and not model.supports_bias:
            raise SpikeRegError(f"input_mode 'bias' needs a neuron model with a bias (CUBA, IF, CUBA-SR or SDNN), "
                                f"not {self.neuron_model}")
        if self.activation not in ACTIVATIONS:
            raise SpikeRegError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if self.activation == "qcfs" and (not isinstance(self.activation_levels, int) or self.activation_levels <= 0):
            raise SpikeRegError(f"activation 'qcfs' needs activation_levels >= 1 (L, the levels T spikes carry), "
                                f"got {self.activation_levels!r}")
        if self.activation == "relu" and self.activation_levels:
            raise SpikeRegError("activation_levels is for activation 'qcfs'")
        if not isinstance(self.half_threshold_start, bool):
            raise SpikeRegError(f"half_threshold_start must be true or false, got {self.half_threshold_start!r}")
        if self.half_threshold_start and "half_threshold_start" not in model.hyperparameters:
            raise SpikeRegError(f"half_threshold_start needs a neuron model that has it, not {self.neuron_model}")
        if (self.payload_bits, self.max_payload) != (4, 0) and "payload_bits" not in model.hyperparameters:
            raise SpikeRegError(f"payload_bits and max_payload are for graded neurons (CUBA-MT), not "
                                f"{self.neuron_model}")
        try:
            self.neuron_for("")  # the model's own checks, e.g. CUBA-SR's half start needs vDecay 0
        except NeuronParamError as err:
            if err.param != "half_threshold_start":
                raise
            raise SpikeRegError(f"half_threshold_start needs voltage_decay = 0 (got {self.voltage_decay}): "
                                f"{err.message}") from None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["encoder"], data["decoder"] = list(self.encoder), list(self.decoder)
        data["thresholds"] = dict(self.thresholds)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UNetConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise SpikeRegError(f"unknown U-Net config keys: {', '.join(sorted(unknown))}")
        return cls(**dict(data))

    def neuron_for(self, layer: str) -> NeuronModel:
        """The layer's neuron parameters: its threshold (or the shared one) and the model's hyper-parameters."""
        model = registry.neuron_model(self.neuron_model)
        threshold = float(self.thresholds.get(layer, self.threshold))
        return model.from_float(threshold, **{name: getattr(self, name) for name in model.hyperparameters})


def layer_names(config: UNetConfig) -> list[str]:
    """Spiking layer names in topological order (the readout is `readout`, the input `input`)."""
    names = [f"enc{i}" for i in range(len(config.encoder))]
    if config.bottleneck:
        names.append("bottleneck")
    names += [f"dec{i}" for i in range(len(config.decoder))]
    return names


def build_unet_spec(config: UNetConfig) -> NetworkSpec:
    """Wire the U-Net: strided encoder, transposed-conv decoder with skip concatenations, readout."""
    k, pad = config.kernel, config.kernel // 2
    layers = [LayerSpec(name="input", kind="input", out_channels=config.input_channels, kernel=1, padding=0)]
    prev = "input"
    for i, channels in enumerate(config.encoder):
        name = f"enc{i}"
        layers.append(LayerSpec(name=name, kind="conv", out_channels=channels, inputs=(prev,), kernel=k,
                                stride=1 if i == 0 else 2, padding=pad, neuron=config.neuron_for(name)))
        prev = name
    if config.bottleneck:
        layers.append(LayerSpec(name="bottleneck", kind="conv", out_channels=config.encoder[-1], inputs=(prev,),
                                kernel=k, stride=1, padding=pad, neuron=config.neuron_for("bottleneck")))
        prev = "bottleneck"
    n_up = len(config.encoder) - 1
    up_pad = (config.up_kernel - 2) // 2
    up_out_pad = config.up_kernel % 2
    for j, channels in enumerate(config.decoder):
        name = f"dec{j}"
        # The skip from the encoder level at this decoder's input resolution (none for dec0: it reads the bottom).
        skip_level = len(config.encoder) - 1 - j
        inputs = (prev,) if j == 0 or skip_level < 0 else (prev, f"enc{skip_level}")
        if j < n_up:
            layer = LayerSpec(name=name, kind="convT", out_channels=channels, inputs=inputs,
                              kernel=config.up_kernel, stride=2, padding=up_pad, output_padding=up_out_pad,
                              neuron=config.neuron_for(name))
        else:
            layer = LayerSpec(name=name, kind="conv", out_channels=channels, inputs=inputs, kernel=k, stride=1,
                              padding=pad, neuron=config.neuron_for(name))
        layers.append(layer)
        prev = name
    layers.append(LayerSpec(name="readout", kind="readout", out_channels=3, inputs=(prev,),
                            kernel=config.readout_kernel, padding=config.readout_kernel // 2))
    return NetworkSpec(layers=tuple(layers), time_steps=config.time_steps, input_channels=config.input_channels,
                       readout_scale=config.readout_gain / 64, input_mode=config.input_mode)
