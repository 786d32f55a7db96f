"""Write `model.net`: NetX HDF5 in lava-dl's own style, plus a documented extension for what netx lacks.

Everything is validated before the file is opened and written through `atomic_file`, so a bad weight or a
shape the network cannot take leaves no file behind. The format is described in docs/netx-format.md.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import h5py
import numpy as np

from spikereg_deploy.atomic import atomic_file
from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.fixed_point import INPUT_BITS
from spikereg_deploy.layer_bias import checked_biases, split_parameters
from spikereg_deploy.network import LayerSpec, NetworkSpec

from .layers import (
    BASE_FORMAT_VERSION,
    BIAS_FORMAT_VERSION,
    WEIGHT_DTYPE,
    LayerRecord,
    device_params_fields,
    int_array,
    int_value,
    neuron_fields,
    text_value,
    weight_array,
    write_layers,
)

#: Root attributes of a spikereg file: which tool reads it, and why stock netx cannot (docs/netx-format.md).
READER = "spikereg-deploy"
STOCK_NETX_NOTE = ("not readable by stock lava-dl netx: 3-D layer types (conv3d, convT3d, readout), several inputs "
                   "per layer and axonal delays are the spikereg extension; read it with spikereg-deploy")

#: File type of each LayerSpec kind (the input is the stock `input` type; the rest are extensions).
FILE_TYPES: dict[str, str] = {"input": "input", "conv": "conv3d", "convT": "convT3d", "readout": "readout"}


def _layer_record(spec: NetworkSpec, layer: LayerSpec, index: dict[str, int], shape: tuple[int, ...],
                  weight: np.ndarray | None, bias: np.ndarray | None = None) -> LayerRecord:
    fields: dict[str, Any] = {"shape": int_array(shape), "name": text_value(layer.name)}
    if layer.kind == "input":
        # Stock netx reads only `shape` here; the rest keeps LayerSpec (and so the fingerprint) exact.
        fields.update(outChannels=int_value(layer.out_channels), kernelSize=int_array(layer.kernel),
                      stride=int_array(layer.stride), padding=int_array(layer.padding),
                      outputPadding=int_array(layer.output_padding))
        return LayerRecord("input", fields)
    assert weight is not None
    fields.update(
        inChannels=int_value(spec.in_channels(layer.name)),
        outChannels=int_value(layer.out_channels),
        kernelSize=int_array(layer.kernel),
        stride=int_array(layer.stride),
        padding=int_array(layer.padding),
        dilation=int_array((1, 1, 1)),
        groups=int_value(1),
        outputPadding=int_array(layer.output_padding),
        weight=weight,
        inputs=int_array(index[src] for src in layer.inputs),
        inputDelay=int_array(edge.delay for edge in spec.edges_into(layer.name)),
    )
    if bias is not None:  # netx's channel-wise `bias` (mantissas at exponent 6), stored like the weights
        fields["bias"] = bias.astype(WEIGHT_DTYPE)
    if layer.kind == "readout":
        fields["scale"] = np.float64(spec.readout_scale)
    neuron = neuron_fields(layer.neuron) if layer.neuron is not None else None
    return LayerRecord(FILE_TYPES[layer.kind], fields, neuron)


def net_records(spec: NetworkSpec, weights: Mapping[str, Any],
                input_shape: tuple[int, int, int]) -> list[LayerRecord]:
    """Validate weights (and `<layer>/bias` biases) against the spec and build one record per layer (SpikeRegError,
    nothing written)."""
    geo = spec.geometry(input_shape)
    weights, raw_biases = split_parameters(weights)
    biases = checked_biases(spec, raw_biases)
    synaptic = [layer.name for layer in spec.layers if layer.kind != "input"]
    missing = [name for name in synaptic if name not in weights]
    if missing:
        raise SpikeRegError(f"no weights for layer(s) {', '.join(missing)}")
    extra = sorted(set(weights) - set(synaptic))
    if extra:
        raise SpikeRegError(f"weights given for unknown layer(s) {', '.join(map(str, extra))}")
    index = {layer.name: i for i, layer in enumerate(spec.layers)}
    records = []
    for layer in spec.layers:
        if layer.kind == "input":
            shape = (spec.input_channels, *geo[layer.name].out_shape)
            records.append(_layer_record(spec, layer, index, shape, None))
            continue
        raw = np.asarray(weights[layer.name])
        want = spec.weight_shape(layer.name)
        if raw.shape != want:
            raise SpikeRegError(f"layer {layer.name!r}: weight shape {raw.shape} != expected {want}")
        try:
            weight = weight_array(raw)
        except SpikeRegError as err:
            raise SpikeRegError(f"layer {layer.name!r}: {err.message}") from None
        shape = (layer.out_channels, *geo[layer.name].out_shape)
        records.append(_layer_record(spec, layer, index, shape, weight, biases.get(layer.name)))
    return records


def write_net(path: str | os.PathLike[str], spec: NetworkSpec, weights: Mapping[str, np.ndarray],
              input_shape: tuple[int, int, int], description: str = "") -> None:
    """Write a spikereg network as NetX HDF5 (shapes for `input_shape`); atomic: failures leave no file."""
    input_shape = tuple(int(n) for n in input_shape)  # type: ignore[assignment]
    records = net_records(spec, weights, input_shape)
    with atomic_file(path, suffix=".net.tmp") as tmp:
        with h5py.File(tmp, "w") as handle:
            write_layers(handle, records)
            biased = any("bias" in record.fields for record in records)
            _write_root(handle, spec, input_shape, description, BIAS_FORMAT_VERSION if biased else BASE_FORMAT_VERSION)


def _write_root(handle: h5py.File, spec: NetworkSpec, input_shape: tuple[int, ...], description: str,
                version: int) -> None:
    """The extension group: what netx has no field for (timing, input size, provenance), and the root attributes
    that tell a person with `h5dump` or stock netx which tool reads the file."""
    handle.attrs["reader"] = text_value(READER)
    handle.attrs["stockNetx"] = text_value(STOCK_NETX_NOTE)
    root = handle.create_group("spikereg")
    root.create_dataset("formatVersion", data=int_value(version))
    root.create_dataset("name", data=text_value(spec.name))
    root.create_dataset("timeSteps", data=int_value(spec.time_steps))
    root.create_dataset("inputChannels", data=int_value(spec.input_channels))
    root.create_dataset("inputShape", data=int_array(input_shape))
    root.create_dataset("fingerprint", data=text_value(spec.architecture_fingerprint()))  # what old readers check
    root.create_dataset("modelFingerprint", data=text_value(spec.model_fingerprint()))
    root.create_dataset("inputBits", data=int_value(INPUT_BITS))
    if spec.input_mode != "analog":  # absent means analog, so files of the analog default stay as they were
        root.create_dataset("inputMode", data=text_value(spec.input_mode))
    root.create_dataset("description", data=text_value(str(description)))


def write_sequential_net(path: str | os.PathLike[str], records: Iterable[LayerRecord]) -> None:
    """Write plain stock NetX (`layer/<i>` only, no extension group), e.g. a 2-D SLAYER network; atomic."""
    records = list(records)
    if not records:
        raise SpikeRegError("a network needs at least one layer")
    with atomic_file(path, suffix=".net.tmp") as tmp:
        with h5py.File(tmp, "w") as handle:
            write_layers(handle, records)


# -- SLAYER sequential networks (stock 2-D types) --------------------------------------------------------
def _slayer_weight(synapse: Any, ndim: int) -> np.ndarray:
    """Mantissas through the synapse's own hook (the neuron's quantize_8bit), as lava-dl exports them."""
    if getattr(synapse, "weight_norm_enabled", False):
        raise SpikeRegError("weight-normalised synapses are not supported: remove weight norm before export")
    if hasattr(synapse, "imag"):
        raise SpikeRegError("complex synapses are not supported")
    hook = getattr(synapse, "pre_hook_fx", None)
    w = synapse.weight
    q = hook(w, descale=True) if hook is not None else w
    arr = q.detach().cpu().numpy()
    arr = arr.reshape(arr.shape[:ndim])
    return weight_array(arr)


def _check_plain(block: Any, kind: str) -> None:
    if getattr(block, "delay", None) is not None:
        raise SpikeRegError(f"{kind} block with learnable axonal delay is not supported")
    norm = getattr(getattr(block, "neuron", None), "norm", None)
    if norm is not None:
        raise SpikeRegError(f"{kind} block with neuron normalisation (bias) is not supported")


def _shape(block: Any, kind: str) -> np.ndarray:
    shape = block.shape
    if shape is None:
        raise SpikeRegError(f"{kind} block has no shape yet: run the network once before exporting")
    return int_array(shape)


def records_from_slayer_blocks(blocks: Iterable[Any]) -> list[LayerRecord]:
    """Records for a sequential SLAYER CUBA net (Input, Conv 2-D, Flatten, Dense), run once so shapes are set.

    Produces the same datasets, dtypes and values as lava-dl's `export_hdf5` for these blocks.
    """
    from lava.lib.dl.slayer.block import base

    records: list[LayerRecord] = []
    for i, block in enumerate(blocks):
        neuron = getattr(block, "neuron", None)
        device = device_params_fields(neuron.device_params) if neuron is not None else None
        if isinstance(block, base.AbstractInput):
            fields: dict[str, Any] = {"shape": _shape(block, "input")}
            if neuron is not None:
                for name in ("weight", "bias"):
                    param = getattr(block, name, None)
                    if param is not None:
                        fields[name] = block.pre_hook_fx(param, descale=True).detach().cpu().numpy()
            records.append(LayerRecord("input", fields, device))
        elif isinstance(block, base.AbstractConv):
            _check_plain(block, "conv")
            syn = block.synapse
            if syn.kernel_size[-1] != 1:
                raise SpikeRegError(f"block {i}: conv kernels with a time extent are not supported")
            records.append(LayerRecord("conv", {
                "shape": _shape(block, "conv"),
                "inChannels": int_value(syn.in_channels),
                "outChannels": int_value(syn.out_channels),
                "kernelSize": int_array(syn.kernel_size[:-1]),
                "stride": int_array(syn.stride[:-1]),
                "padding": int_array(syn.padding[:-1]),
                "dilation": int_array(syn.dilation[:-1]),
                "groups": int_value(syn.groups),
                "weight": _slayer_weight(syn, 4),
            }, device))
        elif isinstance(block, base.AbstractDense):
            _check_plain(block, "dense")
            syn = block.synapse
            records.append(LayerRecord("dense", {
                "shape": _shape(block, "dense"),
                "inFeatures": int_value(syn.in_channels),
                "outFeatures": int_value(syn.out_channels),
                "weight": _slayer_weight(syn, 2),
            }, device))
        elif isinstance(block, base.AbstractFlatten):
            records.append(LayerRecord("flatten", {"shape": _shape(block, "flatten")}))
        else:
            raise SpikeRegError(f"block {i} ({type(block).__name__}) has no stock NetX layer type")
    return records
