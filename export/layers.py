"""One writer for NetX layer groups, shared by the 3-D spikereg writer and the plain 2-D (stock netx) export.

Stock netx reads `layer/<i>` groups written by lava-dl's `export_hdf5`; it is picky about representation
(`type` as a (1,) 'S10' byte string, `neuron/type` as a plain string, scalars as 0-d datasets). Writing every
layer through `write_layer` with values built by the helpers here keeps our files byte-compatible with what
lava-dl writes, so a sequential 2-D network exported by this tool loads in stock netx unchanged.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.neurons import NeuronModel

#: Newest version of the spikereg extension (`spikereg/formatVersion`) this reader reads; it refuses newer files.
FORMAT_VERSION = 2
#: A file is written with the oldest version that holds what it uses, so older readers keep reading it: version 1
#: without layer biases, version 2 (`layer/<i>/bias`) with them (a version-1 reader would ignore a bias silently).
BASE_FORMAT_VERSION = 1
BIAS_FORMAT_VERSION = 2
#: Layer types stock netx (lava-dl 0.6.0) understands, as lava-dl writes them.
STOCK_TYPES: tuple[str, ...] = ("input", "conv", "dense", "flatten")
#: The spikereg extension vocabulary (3-D synapses, several inputs per layer, non-spiking readout).
EXTENSION_TYPES: tuple[str, ...] = ("conv3d", "convT3d", "readout")
#: Width of the fixed-length `type` byte string, as lava-dl writes it.
TYPE_WIDTH = 10
#: lava-dl stores weights as float32 arrays holding integer mantissas; netx casts them with astype(int).
WEIGHT_DTYPE = np.float32


@dataclass
class LayerRecord:
    """A layer as plain datasets: what `layer/<i>` will hold, in writing order (neuron under `neuron/`)."""

    type: str
    fields: dict[str, Any] = field(default_factory=dict)
    neuron: dict[str, Any] | None = None


def int_value(value: Any) -> np.int64:
    """A scalar int dataset value (lava-dl writes Python ints, which h5py stores as int64 0-d datasets)."""
    return np.int64(int(value))


def int_array(values: Iterable[Any]) -> np.ndarray:
    """An int64 1-d array dataset value (shapes, kernel sizes, strides, input lists)."""
    return np.asarray([int(v) for v in values], dtype=np.int64)


def text_value(text: str) -> np.bytes_:
    """An extension string: UTF-8 in a fixed-length scalar, stored inline like `type` rather than in HDF5's
    global heap, whose corruption can hang libhdf5 itself."""
    return np.bytes_(text.encode("utf-8"))


def weight_array(weight: Any) -> np.ndarray:
    """Validated mantissas as lava-dl stores them (float32 holding integers, exact for the 8-bit range)."""
    from spikereg_deploy.fixed_point import check_weight_mantissa

    arr = np.asarray(weight)
    problem = check_weight_mantissa(arr)
    if problem is not None:
        raise SpikeRegError(problem)
    return arr.astype(WEIGHT_DTYPE)


def neuron_fields(neuron: NeuronModel) -> dict[str, Any]:
    """A neuron model's `neuron/` datasets with lava-dl's dtypes (type: str, flags: bool, the rest: int64)."""
    out: dict[str, Any] = {}
    for key, value in neuron.to_netx_fields().items():
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, bool):
            out[key] = np.bool_(value)
        else:
            out[key] = int_value(value)
    return out


def device_params_fields(params: Mapping[str, Any]) -> dict[str, Any]:
    """lava-dl `device_params` (Python/torch scalars) -> dataset values with lava-dl's dtypes."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, bool | np.bool_):
            out[key] = np.bool_(value)
        elif hasattr(value, "item"):  # torch / numpy scalar
            out[key] = np.asarray(value.item() if getattr(value, "ndim", 0) == 0 else value)
        else:
            out[key] = np.asarray(value)
    return out


def _write_value(group: h5py.Group, name: str, value: Any) -> None:
    if isinstance(value, str):
        group.create_dataset(name, data=value)  # variable-length string, as lava-dl's neuron/type
    else:
        group.create_dataset(name, data=np.asarray(value))


def write_layer(group: h5py.Group, record: LayerRecord) -> None:
    """Write one layer group exactly in lava-dl's style (type first, then fields, then neuron/)."""
    if not record.type or len(record.type.encode("ascii")) > TYPE_WIDTH:
        raise SpikeRegError(f"layer type {record.type!r} does not fit NetX's {TYPE_WIDTH}-byte type field")
    group.create_dataset("type", (1,), f"S{TYPE_WIDTH}", [record.type.encode("ascii")])
    for name, value in record.fields.items():
        _write_value(group, name, value)
    if record.neuron is not None:
        for name, value in record.neuron.items():
            _write_value(group, f"neuron/{name}", value)


def write_layers(handle: h5py.File | h5py.Group, records: Iterable[LayerRecord]) -> int:
    """Write `layer/0..n-1` (contiguous, as netx iterates them); returns n."""
    layer_group = handle.create_group("layer")
    count = 0
    for count, record in enumerate(records, start=1):
        write_layer(layer_group.create_group(str(count - 1)), record)
    return count
