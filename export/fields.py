"""Typed, validated access to the datasets of a NetX HDF5 file, shared by the spikereg and the plain NetX reader.

Nothing in a file is trusted: every read checks presence, dtype and shape and fails with one `NetFormatError`
naming the file and the field.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NoReturn

import h5py
import numpy as np

from spikereg_deploy.errors import NetFormatError, SpikeRegError
from spikereg_deploy.fixed_point import check_weight_mantissa
from spikereg_deploy.layer_bias import bias_range, check_bias_mantissa
from spikereg_deploy.network import LayerSpec, NetworkSpec
from spikereg_deploy.neurons import NEURON_TYPES, NeuronModel, neuron_model


@dataclass
class LoadedNet:
    """A validated network: spec, int64 weight mantissas (writer layouts), the volume size written for."""

    spec: NetworkSpec
    weights: dict[str, np.ndarray]
    input_shape: tuple[int, int, int]
    format_version: int
    description: str
    #: "spikereg" (the 3-D extension) or "netx" (a plain lava-dl NetX file: no T, input mode from the run's input)
    source: str = "spikereg"
    #: each synaptic layer's type as the file names it (`conv`, `dense`, `conv3d`, ...), for `--check`
    file_types: dict[str, str] = field(default_factory=dict)


class Fields:
    """Typed access to one HDF5 group; every failure names the group and field."""

    def __init__(self, path: str, group: Any, where: str) -> None:
        self.path, self.group, self.where = path, group, where

    def fail(self, message: str) -> NoReturn:
        raise NetFormatError(f"{self.where}: {message}" if self.where else message, self.path)

    def has(self, key: str) -> bool:
        return key in self.group

    def sub(self, key: str) -> Fields:
        obj = self.group.get(key)
        if not isinstance(obj, h5py.Group):
            self.fail(f"missing group '{key}'" if obj is None else f"'{key}' is not a group")
        return Fields(self.path, obj, f"{self.where}/{key}" if self.where else key)

    def dataset(self, key: str) -> h5py.Dataset:
        obj = self.group.get(key)
        if not isinstance(obj, h5py.Dataset):
            self.fail(f"missing field '{key}'" if obj is None else f"field '{key}' is not a dataset")
        return obj

    def _ints(self, key: str, kinds: str = "iu") -> h5py.Dataset:
        ds = self.dataset(key)
        if ds.dtype.kind not in kinds:
            self.fail(f"field '{key}' has dtype {ds.dtype}, expected integers")
        return ds

    def int(self, key: str) -> int:
        ds = self._ints(key)
        if ds.shape != ():
            self.fail(f"field '{key}' has shape {ds.shape}, expected a scalar")
        return int(ds[()])

    def ints(self, key: str, length: int | None = None) -> tuple[int, ...]:
        ds = self._ints(key)
        if len(ds.shape) != 1 or (length is not None and ds.shape[0] != length) or ds.shape[0] > 64:
            want = f"({length},)" if length is not None else "a short 1-d array"
            self.fail(f"field '{key}' has shape {ds.shape}, expected {want}")
        return tuple(int(v) for v in ds[()])

    def flag(self, key: str) -> bool:
        ds = self._ints(key, kinds="biu")
        if ds.shape != () or int(ds[()]) not in (0, 1):
            self.fail(f"field '{key}' must be a scalar boolean")
        return bool(ds[()])

    def float(self, key: str) -> float:
        ds = self.dataset(key)
        if ds.dtype.kind not in "fiu" or ds.shape != ():
            self.fail(f"field '{key}' must be a scalar number (dtype {ds.dtype}, shape {ds.shape})")
        value = float(ds[()])
        if not math.isfinite(value):
            self.fail(f"field '{key}' is not finite ({value})")
        return value

    def text(self, key: str, allow_array: bool = False) -> str:
        ds = self.dataset(key)
        is_str = ds.dtype.kind == "S" or h5py.check_string_dtype(ds.dtype) is not None
        if not is_str or not (ds.shape == () or (allow_array and ds.shape == (1,))):
            self.fail(f"field '{key}' must be a string (dtype {ds.dtype}, shape {ds.shape})")
        value = ds[()] if ds.shape == () else ds[0]
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        if not isinstance(value, str):
            self.fail(f"field '{key}' must be a string")
        return value


def read_weight(layer: Fields, shape: tuple[int, ...]) -> np.ndarray:
    ds = layer.dataset("weight")
    if ds.dtype.kind not in "iuf":
        layer.fail(f"weight has dtype {ds.dtype}, expected integer mantissas (int or float)")
    if ds.shape != shape:
        layer.fail(f"weight shape {ds.shape} does not match its channels and kernel {shape}")
    raw = np.asarray(ds[()])
    problem = check_weight_mantissa(raw)
    if problem is not None:
        layer.fail(problem)
    return raw.astype(np.int64)


def read_bias(layer: Fields, spec: LayerSpec) -> np.ndarray:
    """The optional channel-wise `bias` (netx's field: integer mantissas at exponent 6, one per output channel)."""
    channels = spec.out_channels
    ds = layer.dataset("bias")
    if ds.dtype.kind not in "iuf":
        layer.fail(f"bias has dtype {ds.dtype}, expected integer mantissas (int or float)")
    if ds.shape != (channels,):
        layer.fail(f"bias shape {ds.shape} does not match its {channels} output channels (one per channel)")
    raw = np.asarray(ds[()])
    problem = check_bias_mantissa(raw, bias_range(spec))
    if problem is not None:
        layer.fail(problem)
    return raw.astype(np.int64)


def read_neuron(layer: Fields) -> NeuronModel:
    """The `neuron/` group through the model its `type` names; every field is read with the type the model says."""
    neuron = layer.sub("neuron")
    neuron_type = neuron.text("type")
    try:
        model = neuron_model(neuron_type)
    except SpikeRegError:
        neuron.fail(f"unsupported neuron type {neuron_type!r} (known: {', '.join(NEURON_TYPES)})")
    unknown = sorted(set(neuron.group.keys()) - {"type", *model.netx_fields})
    if unknown:
        neuron.fail(f"unsupported {neuron_type} neuron field(s) {', '.join(unknown)}")
    values: dict[str, Any] = {"type": neuron_type}
    for key, (_param, kind) in model.netx_fields.items():
        if key in model.netx_defaults and not neuron.has(key):
            continue  # an optional field the file omits: the model's default (lava-dl's)
        values[key] = neuron.flag(key) if kind is bool else neuron.text(key) if kind is str else neuron.int(key)
    try:
        return model.from_netx_fields(values, neuron.where)
    except NetFormatError as err:
        raise NetFormatError(err.message, layer.path) from None
