"""Read lava-dl's own NetX files (no `spikereg/` group) into the network description, so every tool runs them.

lava-dl's `export_hdf5` writes sequential 2-D networks: `input`, `conv` (2-D), `flatten`, `dense`, with a neuron per
synaptic layer. The description is 3-D and keeps the project's (C, D, H, W) torch order, so:

- a 2-D map (C, H, W) is the map (C, 1, H, W); a conv kernel, stride and padding (kH, kW) gain a depth of 1, 1, 0;
- a `dense` layer is a conv whose kernel covers its whole input map: (C, 1, H, W) -> (out, 1, 1, 1), its weight
  (out, C*H*W) reshaped in SLAYER's (C, H, W) flatten order, which is also netx's (it transposes its (x, y, c) maps
  back to (c, y, x) before flattening);
- `flatten` holds no synapse: it only lets the next `dense` read a spatial map.

A plain file has no T and no input encoding: the run's input gives both (a (C, H, W, T) spike train, input mode
`spikes`, or a (C, H, W) analog image, input mode `analog`, with T from the caller), hence `spec_for_run`.
docs/netx-format.md, "Plain NetX files".
"""
from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np

from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.network import LayerSpec, NetworkSpec

from .fields import Fields, LoadedNet, read_neuron, read_weight
from .layers import EXTENSION_TYPES

#: The layer types of a plain NetX file this reader runs, and the fields each may have.
PLAIN_FIELDS: dict[str, frozenset[str]] = {
    "input": frozenset({"type", "shape"}),
    "conv": frozenset({"type", "shape", "inChannels", "outChannels", "kernelSize", "stride", "padding", "dilation",
                       "groups", "weight", "neuron"}),
    "dense": frozenset({"type", "shape", "inFeatures", "outFeatures", "weight", "neuron"}),
    "flatten": frozenset({"type", "shape"}),
}
#: T written into a plain file's description until a run gives its own (netx files carry no T).
PLAIN_DEFAULT_T = 16
#: Neuron types stock netx (lava-dl 0.6) builds; the registry's extensions (IF, CUBA-SR, CUBA-MT) it does not know.
#: SDNN is read as lava-dl writes it (type, activation, vThMant; messageBits optional, 16 by default), for conv and
#: dense layers; netx's sigma-delta *input* layer (a `Delta` neuron on the input) is not (see `read_plain`).
STOCK_NEURON_TYPES = ("CUBA", "SDNN")


def spec_for_run(spec: NetworkSpec, time_steps: int, input_mode: str) -> NetworkSpec:
    """A plain file's description with the run's T and input encoding (both come from the input, not the file)."""
    return replace(spec, time_steps=int(time_steps), input_mode=input_mode)


def spec_for_report(spec: NetworkSpec, report: dict) -> NetworkSpec:
    """A plain file's description as a simulation report ran it (its T and input mode), so that the report's model
    fingerprint can be checked against it; anything unusable is left for the fingerprint check to refuse."""
    t, mode = report.get("time_steps"), (report.get("network") or {}).get("input_mode")
    if isinstance(t, int) and not isinstance(t, bool) and t > 0 and mode in ("spikes", "analog"):
        return spec_for_run(spec, t, mode)
    return spec


def _pair(layer: Fields, key: str, default: int | None = None) -> tuple[int, int]:
    """A 2-D field as lava-dl writes it: a scalar or an (H, W) pair."""
    if default is not None and not layer.has(key):
        return (default, default)
    ds = layer.dataset(key)
    if ds.shape == ():
        value = layer.int(key)
        return (value, value)
    values = layer.ints(key, 2)
    return (values[0], values[1])


def read_plain(path: str, handle: h5py.File) -> LoadedNet:
    """A plain NetX file as a network description (NetFormatError naming the file and layer for anything else)."""
    top = Fields(path, handle, "")
    layers_group = top.sub("layer")
    keys = set(layers_group.group.keys())
    count = len(keys)
    if keys != {str(i) for i in range(count)}:
        layers_group.fail("layer groups must be named 0..n-1 with no gaps")
    specs: list[LayerSpec] = []
    weights: dict[str, np.ndarray] = {}
    file_types: dict[str, str] = {}
    channels, hw = 0, (0, 0)  # the current map (C, H, W)
    input_hw = hw
    flattened = False
    types = [layers_group.sub(str(i)).text("type", allow_array=True).rstrip("\x00") for i in range(count)]
    for i, file_type in enumerate(types):  # a spikereg file that lost its group is named as such, first
        if file_type in EXTENSION_TYPES:
            layers_group.sub(str(i)).fail(f"missing 'spikereg/' group, which layer type {file_type!r} needs (a "
                                          f"plain NetX file holds only {', '.join(PLAIN_FIELDS)})")
    for i, file_type in enumerate(types):
        layer = layers_group.sub(str(i))
        if file_type not in PLAIN_FIELDS:
            layer.fail(f"layer type {file_type!r} cannot be run (plain NetX layers supported: input, conv (2-D), "
                       f"dense, flatten)")
        if (file_type == "input") != (i == 0):
            layer.fail("the input layer must be layer 0 and only layer 0")
        extra = sorted(set(layer.group.keys()) - PLAIN_FIELDS[file_type])
        if file_type == "input" and "neuron" in extra:
            layer.fail("an input layer with neurons (netx's bias-driven input) is not supported: export the "
                       "Input block without a neuron")
        if extra:
            layer.fail(f"field(s) {', '.join(extra)} not supported for a {file_type} layer")
        shape = layer.ints("shape")
        if file_type == "input":
            if len(shape) not in (1, 3) or min(shape) <= 0:
                layer.fail(f"input shape {list(shape)} must be (C, H, W) or (N,) with positive sizes")
            channels, hw = shape[0], (shape[1], shape[2]) if len(shape) == 3 else (1, 1)
            input_hw = hw
            specs.append(LayerSpec(name="input", kind="input", out_channels=channels, kernel=1, padding=0))
            continue
        if file_type == "flatten":
            if flattened or i == count - 1:
                layer.fail("a flatten must be followed by a dense layer")
            if shape not in ((channels * hw[0] * hw[1], 1, 1), (channels * hw[0] * hw[1],)):
                layer.fail(f"flatten shape {list(shape)} does not hold the {channels}x{hw[0]}x{hw[1]} map before it")
            flattened = True
            continue
        name = f"{file_type}{i}"
        if file_type == "conv":
            if flattened:
                layer.fail("a conv cannot read a flattened map")
            spec, out_hw = _conv(layer, name, specs[-1].name, channels, hw)
            want = (spec.out_channels, *out_hw)
            weight = read_weight(layer, (spec.out_channels, channels, *spec.kernel[1:]))[:, :, None]
        else:
            spec = _dense(layer, name, specs[-1].name, channels, hw, flattened)
            out_hw, want = (1, 1), (spec.out_channels,)
            flat = read_weight(layer, (spec.out_channels, channels * hw[0] * hw[1]))
            weight = flat.reshape(spec.out_channels, channels, 1, *hw)
        if shape != want:
            layer.fail(f"shape {list(shape)} differs from what its input and geometry give {list(want)}")
        specs.append(spec)
        weights[name], file_types[name] = weight, file_type
        channels, hw, flattened = spec.out_channels, out_hw, False
    if len(specs) < 2:
        layers_group.fail(f"a network needs an input and at least one conv or dense layer, found {count} layer(s)")
    try:
        net = NetworkSpec(layers=tuple(specs), time_steps=PLAIN_DEFAULT_T, input_channels=specs[0].out_channels,
                          name=Path(path).stem or "netx", input_mode="spikes")
    except SpikeRegError as err:
        top.fail(f"invalid network: {err.message}")
    return LoadedNet(spec=net, weights=weights, input_shape=(1, *input_hw), format_version=0,
                     description=f"plain NetX file {os.path.basename(path)}", source="netx", file_types=file_types)


def _conv(layer: Fields, name: str, src: str, channels: int, hw: tuple[int, int]) -> tuple[LayerSpec, tuple[int, int]]:
    """A 2-D conv as a 3-D one of depth 1; groups and dilation other than 1 are refused."""
    if layer.int("groups") != 1 or _pair(layer, "dilation", 1) != (1, 1):
        layer.fail("only groups == 1 and dilation == 1 are supported")
    if layer.int("inChannels") != channels:
        layer.fail(f"inChannels {layer.int('inChannels')} != {channels}, the channels of the map before it")
    kernel, stride, padding = _pair(layer, "kernelSize"), _pair(layer, "stride", 1), _pair(layer, "padding", 0)
    try:
        spec = LayerSpec(name=name, kind="conv", out_channels=layer.int("outChannels"), inputs=(src,),
                         kernel=(1, *kernel), stride=(1, *stride), padding=(0, *padding),
                         neuron=read_neuron(layer))
    except SpikeRegError as err:
        layer.fail(err.message)
    out_hw = spec.output_shape((1, *hw))[1:]
    if min(out_hw) <= 0:
        layer.fail(f"the {hw[0]}x{hw[1]} map before it is smaller than the kernel {kernel[0]}x{kernel[1]}")
    return spec, (out_hw[0], out_hw[1])


def _dense(layer: Fields, name: str, src: str, channels: int, hw: tuple[int, int], flattened: bool) -> LayerSpec:
    """A dense layer as a conv whose kernel is its whole input map (no padding, one output position)."""
    if hw != (1, 1) and not flattened:
        layer.fail(f"a dense layer reads the {channels}x{hw[0]}x{hw[1]} map before it without a flatten layer")
    features = channels * math.prod(hw)
    if layer.int("inFeatures") != features:
        layer.fail(f"inFeatures {layer.int('inFeatures')} != {features}, the size of the map before it")
    try:
        return LayerSpec(name=name, kind="conv", out_channels=layer.int("outFeatures"), inputs=(src,),
                         kernel=(1, *hw), stride=1, padding=0, neuron=read_neuron(layer))
    except SpikeRegError as err:
        layer.fail(err.message)


def stock_netx_verdict(loaded: LoadedNet) -> str:
    """One line for `--check`: can stock lava-dl `netx.hdf5.Network` load this file, and if not, why."""
    if loaded.source != "netx":
        return ("stock netx: cannot read this file (spikereg 3-D extension: layer types conv3d/convT3d/readout, "
                "several inputs per layer, axonal delays); read it with spikereg-deploy (docs/netx-format.md)")
    unknown = sorted({layer.neuron.netx_type for layer in loaded.spec.layers
                      if layer.neuron is not None and layer.neuron.netx_type not in STOCK_NEURON_TYPES})
    if unknown:
        return (f"stock netx: cannot read this file (neuron type(s) {', '.join(unknown)} are spikereg extensions)")
    return "stock netx: can read this file (plain NetX: input, conv, flatten, dense, CUBA or SDNN neurons)"
