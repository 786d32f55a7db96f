"""Read and validate `model.net`: every problem with a file becomes one `NetFormatError` line naming the file.

A `.net` file comes from outside (another machine, another version, a truncated copy), so nothing in it is
trusted: each field is checked for presence, dtype and shape before use, the network is rebuilt through
`NetworkSpec` (which re-derives geometry and timing), and the stored shapes, delays and fingerprint must agree
with what the rebuilt graph implies. The reader raises `NetFormatError` and nothing else for any file content.
"""
from __future__ import annotations

import errno
import os
from typing import Any

import h5py
import numpy as np

from spikereg_deploy.errors import NetFormatError, SpikeRegError
from spikereg_deploy.fixed_point import INPUT_BITS
from spikereg_deploy.layer_bias import bias_key
from spikereg_deploy.network import REGISTRATION_INPUT_MODES, LayerSpec, NetworkSpec
from spikereg_deploy.neurons import NeuronModel

from .fields import Fields, LoadedNet, read_bias, read_neuron, read_weight
from .layers import FORMAT_VERSION
from .netx_plain import read_plain
from .writer import FILE_TYPES

KINDS = {file_type: kind for kind, file_type in FILE_TYPES.items()}
#: Errors h5py and numpy raise for damaged content; all become NetFormatError.
_READ_ERRORS = (OSError, KeyError, ValueError, TypeError, IndexError, RuntimeError, OverflowError,
                UnicodeError)


def _open_error(path: str, err: Exception) -> NetFormatError:
    if isinstance(err, FileNotFoundError) or not os.path.exists(path):
        return NetFormatError("no such file", path)
    if os.path.isdir(path):
        return NetFormatError("is a directory, not a .net file", path)
    if not os.access(path, os.R_OK):  # h5py words this as a damaged file; say what it is
        return NetFormatError(f"cannot read the file ({os.strerror(errno.EACCES)})", path)
    if not h5py.is_hdf5(path):
        return NetFormatError("not an HDF5 file (a NetX .net file is HDF5)", path)
    if "truncated file" in str(err):
        return NetFormatError(f"truncated file ({err})", path)
    return NetFormatError(f"unreadable HDF5 file (damaged?): {err}", path)


def read_net(path: str | os.PathLike[str]) -> LoadedNet:
    """Load and validate a spikereg `.net` file; raises NetFormatError (and only that) for any bad content."""
    name = str(path)
    if not os.path.exists(name):
        raise NetFormatError("no such file", name)
    try:
        handle = h5py.File(name, "r")
    except _READ_ERRORS as err:
        raise _open_error(name, err) from None
    try:
        with handle:
            return _read(name, handle)
    except NetFormatError:
        raise
    except SpikeRegError as err:
        raise NetFormatError(err.message, name) from None
    except _READ_ERRORS as err:
        message = f"unreadable content (truncated or damaged?): {type(err).__name__}: {err}"
        raise NetFormatError(message, name) from None


def _read(path: str, handle: h5py.File) -> LoadedNet:
    top = Fields(path, handle, "")
    if "spikereg" not in handle:  # a plain NetX file (lava-dl's export_hdf5, or write_sequential_net)
        return read_plain(path, handle)
    root = top.sub("spikereg")
    version = root.int("formatVersion")
    if version > FORMAT_VERSION:
        root.fail(f"written by a newer spikereg-deploy (format {version} > {FORMAT_VERSION})")
    if version < 1:
        root.fail(f"invalid formatVersion {version}")
    input_bits = root.int("inputBits")
    if input_bits != INPUT_BITS:
        root.fail(f"inputBits {input_bits} is not supported (this version quantizes inputs to {INPUT_BITS})")
    input_channels = root.int("inputChannels")
    input_shape = root.ints("inputShape", 3)
    layers_group = top.sub("layer")
    keys = set(layers_group.group.keys())
    count = len(keys)
    if keys != {str(i) for i in range(count)}:
        layers_group.fail("layer groups must be named 0..n-1 with no gaps")
    if count < 2:
        layers_group.fail(f"a network needs an input and a readout layer, found {count} layer(s)")

    specs: list[LayerSpec] = []
    raw: list[dict[str, Any]] = []
    for i in range(count):
        layer = layers_group.sub(str(i))
        file_type = layer.text("type", allow_array=True).rstrip("\x00")
        if file_type not in KINDS:
            layer.fail(f"unknown layer type {file_type!r} (supported: {', '.join(KINDS)})")
        kind = KINDS[file_type]
        if (kind == "input") != (i == 0):
            layer.fail("the input layer must be layer 0 and only layer 0")
        name = layer.text("name")
        if kind == "input":
            if layer.has("neuron") or layer.has("bias"):
                layer.fail(f"the analog input layer must not have a {'neuron' if layer.has('neuron') else 'bias'}")
            shape = layer.ints("shape", 4)
            out_channels = layer.int("outChannels") if layer.has("outChannels") else input_channels
            inputs: tuple[str, ...] = ()
            info: dict[str, Any] = {"shape": shape}
        else:
            if layer.int("groups") != 1 or layer.ints("dilation", 3) != (1, 1, 1):
                layer.fail("only groups == 1 and dilation == 1 are supported")
            indices = layer.ints("inputs")
            for src in indices:
                if not 0 <= src < i:
                    layer.fail(f"inputs refer to layer {src}, which is not an earlier layer")
            inputs = tuple(specs[src].name for src in indices)
            out_channels = layer.int("outChannels")
            info = {"shape": layer.ints("shape", 4), "delays": layer.ints("inputDelay", len(indices)),
                    "in_channels": layer.int("inChannels")}
            if kind == "readout":
                if layer.has("neuron"):
                    layer.fail("the readout has no neurons but the layer has a 'neuron' group")
                info["scale"] = layer.float("scale")
        neuron = read_neuron(layer) if kind in ("conv", "convT") else None
        # The input's geometry fields are optional (stock netx has none); a convT's outputPadding is required.
        optional = {"kernelSize": 1, "stride": 1, "padding": 0} if kind == "input" else {}
        optional["outputPadding"] = 0
        if kind == "convT":
            optional.pop("outputPadding")
        geometry = {key: layer.ints(key, 3) if key not in optional or layer.has(key) else optional[key]
                    for key in ("kernelSize", "stride", "padding", "outputPadding")}
        try:
            spec = LayerSpec(name=name, kind=kind, out_channels=out_channels, inputs=inputs,
                             kernel=geometry["kernelSize"], stride=geometry["stride"],
                             padding=geometry["padding"], output_padding=geometry["outputPadding"],
                             neuron=neuron)
        except NetFormatError:
            raise
        except SpikeRegError as err:
            layer.fail(err.message)
        specs.append(spec)
        raw.append(info)
    if "scale" not in raw[-1]:
        top.fail("the last layer must be the readout")
    time_steps, net_name = root.int("timeSteps"), root.text("name")
    input_mode = root.text("inputMode") if root.has("inputMode") else "analog"
    if input_mode not in REGISTRATION_INPUT_MODES:
        root.fail(f"inputMode {input_mode!r} is not one of {', '.join(REGISTRATION_INPUT_MODES)}")
    try:
        spec = NetworkSpec(layers=tuple(specs), time_steps=time_steps, input_channels=input_channels,
                           readout_scale=raw[-1]["scale"], name=net_name, input_mode=input_mode)
    except SpikeRegError as err:
        top.fail(f"invalid network: {err.message}")
    stored = root.text("fingerprint")
    if stored != spec.architecture_fingerprint():
        root.fail(f"fingerprint {stored!r} does not match the layers ({spec.architecture_fingerprint()!r}): "
                  f"edited file?")
    if root.has("modelFingerprint"):  # files written before it existed load on the architecture alone
        stored = root.text("modelFingerprint")
        if stored != spec.model_fingerprint():
            root.fail(f"modelFingerprint {stored!r} does not match the layers, neurons, T and readout scale "
                      f"({spec.model_fingerprint()!r}): edited file?")
    try:
        geo = spec.geometry(input_shape)
    except SpikeRegError as err:
        root.fail(f"inputShape {list(input_shape)}: {err.message}")

    weights: dict[str, np.ndarray] = {}
    for i, (layer_spec, info) in enumerate(zip(spec.layers, raw, strict=True)):
        layer = layers_group.sub(str(i))
        channels = spec.input_channels if layer_spec.kind == "input" else layer_spec.out_channels
        want_shape = (channels, *geo[layer_spec.name].out_shape)
        if info["shape"] != want_shape:
            layer.fail(f"shape {list(info['shape'])} is inconsistent with inputShape {list(input_shape)} "
                       f"(expected {list(want_shape)})")
        if layer_spec.kind == "input":
            continue
        if info["in_channels"] != spec.in_channels(layer_spec.name):
            layer.fail(f"inChannels {info['in_channels']} != {spec.in_channels(layer_spec.name)}, the sum of "
                       f"its inputs' channels")
        delays = [edge.delay for edge in spec.edges_into(layer_spec.name)]
        if list(info["delays"]) != delays:
            layer.fail(f"inputDelay {list(info['delays'])} differs from what the graph's timing requires {delays}")
        weights[layer_spec.name] = read_weight(layer, spec.weight_shape(layer_spec.name))
        if layer.has("bias"):
            if layer_spec.neuron is not None and not layer_spec.neuron.supports_bias:
                layer.fail(f"a {layer_spec.neuron.netx_type} neuron has no bias, but the layer has a 'bias' field")
            bias = read_bias(layer, layer_spec)
            if bias.any():
                weights[bias_key(layer_spec.name)] = bias
    return LoadedNet(spec=spec, weights=weights, input_shape=tuple(input_shape),  # type: ignore[arg-type]
                     format_version=version, description=root.text("description"),
                     file_types={layer.name: FILE_TYPES[layer.kind] for layer in spec.layers[1:]})


# -- --check summary -----------------------------------------------------------------------------------
def summarize(loaded: LoadedNet) -> list[dict[str, Any]]:
    """One row per layer with what a user checks before deploying: sizes, weights, wiring, delays, neurons."""
    spec = loaded.spec
    geo = spec.geometry(loaded.input_shape)
    index = {layer.name: i for i, layer in enumerate(spec.layers)}
    delays = {(e.src, e.dst): e.delay for e in spec.edges()}
    rows = []
    for i, layer in enumerate(spec.layers):
        g = geo[layer.name]
        channels = spec.input_channels if layer.kind == "input" else layer.out_channels
        neuron = layer.neuron
        rows.append({
            "index": i,
            "name": layer.name,
            "type": loaded.file_types.get(layer.name, FILE_TYPES[layer.kind]),
            "shape": [channels, *g.out_shape],
            "neurons": g.neurons if layer.spiking else 0,
            "synapses": int(loaded.weights[layer.name].size) if layer.name in loaded.weights else 0,
            "bias": _bias_range(loaded.weights.get(bias_key(layer.name))),
            "kernel": list(layer.kernel) if layer.kind != "input" else None,
            "stride": list(layer.stride) if layer.kind != "input" else None,
            "inputs": [{"index": index[s], "name": s, "delay": delays[(s, layer.name)]}
                       for s in layer.inputs],
            "neuron": None if neuron is None else _summary_neuron(neuron),
        })
    return rows


def _bias_range(bias: np.ndarray | None) -> list[int] | None:
    """[min, max] of a layer's bias mantissas (exponent 6), None without a bias."""
    return None if bias is None else [int(bias.min()), int(bias.max())]


def _summary_neuron(neuron: NeuronModel) -> dict[str, Any]:
    """What `--check` shows of a neuron: its NetX fields, without the graded flag (always false) and, for CUBA,
    without the type, as before other models existed."""
    fields = {k: v for k, v in neuron.to_netx_fields().items() if k != "gradedSpike"}
    if fields["type"] == "CUBA":
        del fields["type"]
    return fields


#: `neuron/` fields the summary's neuron column shows as iDecay/vDecay/vThMant (or leaves out: refDelay is always 1).
_CELL_FIELDS = ("type", "iDecay", "vDecay", "vThMant", "refDelay")


def _neuron_cell(neuron: dict[str, Any] | None) -> str:
    """iDecay/vDecay/vThMant; a model without decays shows '-' for them; a non-CUBA one its type and any field of
    its own (e.g. `halfThresholdStart=True`)."""
    if neuron is None:
        return "-"
    cell = "/".join(str(neuron.get(key, "-")) for key in ("iDecay", "vDecay", "vThMant"))
    if "type" not in neuron:
        return cell
    extra = [f"{key}={value}" for key, value in neuron.items() if key not in _CELL_FIELDS]
    return f"{cell} ({', '.join([neuron['type'], *extra])})"


def format_summary(rows: list[dict[str, Any]]) -> str:
    """A fixed-width table of `summarize` rows, with totals."""
    def triple(v: list[int] | None) -> str:
        return "-" if v is None else ("x".join(map(str, v)) if len(set(v)) > 1 else str(v[0]))

    biased = any(row.get("bias") is not None for row in rows)  # the column only where a layer has a bias
    header = ("#", "name", "type", "shape (CxDxHxW)", "neurons", "weights", "k", "s", "inputs (delay)",
              "iDecay/vDecay/vThMant", *(("bias (mant, exp 6)",) if biased else ()))
    table = [header]
    for row in rows:
        inputs = ", ".join(f"{s['name']}({s['delay']})" for s in row["inputs"]) or "-"
        n = row["neuron"]
        bias = row.get("bias")
        bias_cell = ("-" if bias is None else f"{bias[0]}..{bias[1]}",) if biased else ()
        table.append((str(row["index"]), row["name"], row["type"], "x".join(map(str, row["shape"])),
                      f"{row['neurons']:,}", f"{row['synapses']:,}", triple(row["kernel"]),
                      triple(row["stride"]), inputs,
                      _neuron_cell(n), *bias_cell))
    widths = [max(len(r[c]) for r in table) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    neurons, synapses = sum(r["neurons"] for r in rows), sum(r["synapses"] for r in rows)
    lines.append(f"total: {neurons:,} neurons, {synapses:,} weights, {len(rows)} layers")
    return "\n".join(lines)


__all__ = ["LoadedNet", "read_net", "summarize", "format_summary"]
