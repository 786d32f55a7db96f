"""Per-channel layer biases: the one place that says how a bias is stored, keyed, checked and when it acts.

A bias is Loihi's per-compartment bias: an integer mantissa per output channel at exponent `INPUT_BIAS_EXP` (6),
added to every neuron's voltage at every step, as lava-nc's LIF (`bias_mant << bias_exp`) and netx's channel-wise
`bias` (lava-dl's `layer/<i>/bias`, exponent 6) do: 13-bit signed mantissas. A readout (no neurons) is summed on
the host, which adds its bias, in the same units, to the readout's integer synaptic sum at every step of its window;
its range is what the file's float32 storage holds exactly (24 bits).

Biases travel with the weights in one parameter mapping under the key `<layer>/bias` (a layer name holds no '/',
so the key cannot clash; it mirrors the file's `layer/<i>/bias`), so every stage that passes weights along passes
the biases with them and only the stages that compute (writer, reader, engines) look inside.

Timing: the model has no pipeline (every layer sees step t of its inputs at step t), so a layer's bias acts at
its steps 0..T-1. On Loihi, and in Lava, a layer at pipeline depth d receives its first input at step d; a bias
present from step 0 would charge it for d extra steps. So the host enables each layer's bias at the step its
first input arrives (`bias_start_step`; one register write per core), which keeps Lava and the engine equal.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import SpikeRegError
from .network import LayerSpec, NetworkSpec
from .quantization import BIAS_MANT_MAX, BIAS_MANT_MIN

BIAS_SUFFIX = "/bias"
#: A readout bias is a host-side integer add; biases are stored as float32 (as lava-dl stores them), exact to 2^24.
READOUT_BIAS_LIMIT = 1 << 24


def bias_key(layer: str) -> str:
    """The parameter-mapping key of `layer`'s bias."""
    return f"{layer}{BIAS_SUFFIX}"


def is_bias_key(key: str) -> bool:
    return key.endswith(BIAS_SUFFIX)


def split_parameters(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(weights by layer, biases by layer) of a parameter mapping."""
    weights = {k: v for k, v in params.items() if not is_bias_key(k)}
    biases = {k[: -len(BIAS_SUFFIX)]: v for k, v in params.items() if is_bias_key(k)}
    return weights, biases


def bias_range(layer: LayerSpec) -> tuple[int, int]:
    """The mantissas a layer's bias may take: Loihi's 13-bit compartment bias, or the host's readout add."""
    if layer.kind == "readout":
        return -READOUT_BIAS_LIMIT, READOUT_BIAS_LIMIT
    return BIAS_MANT_MIN, BIAS_MANT_MAX


def check_bias_mantissa(bias: np.ndarray, limits: tuple[int, int] = (BIAS_MANT_MIN, BIAS_MANT_MAX)) -> str | None:
    """Why `bias` is not a valid array of bias mantissas (integers within `limits`: Loihi's 13-bit signed range for
    a compartment), or None if it is."""
    if not np.issubdtype(bias.dtype, np.number) or np.issubdtype(bias.dtype, np.complexfloating):
        return f"bias has non-numeric dtype {bias.dtype}"
    if not np.all(np.isfinite(bias)):
        return "bias contains NaN or inf"
    if np.any(bias != np.round(bias)):
        return "bias values are not integer mantissas"
    lo, hi = float(bias.min(initial=0)), float(bias.max(initial=0))
    if lo < limits[0] or hi > limits[1]:
        what = "Loihi's 13-bit mantissa range" if limits == (BIAS_MANT_MIN, BIAS_MANT_MAX) else "the readout's range"
        return f"bias out of {what} [{limits[0]}, {limits[1]}] (found {lo:g}..{hi:g})"
    return None


def checked_biases(spec: NetworkSpec, biases: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The biases as int64 (out_channels,) arrays, after checking each names a synaptic layer and fits Loihi."""
    out: dict[str, np.ndarray] = {}
    names = {layer.name for layer in spec.layers if layer.kind != "input"}
    for name, raw in biases.items():
        if name not in names:
            raise SpikeRegError(f"bias given for unknown layer {name!r}")
        arr = np.asarray(raw)
        want = (spec.layer(name).out_channels,)
        if arr.shape != want:
            raise SpikeRegError(f"layer {name!r}: bias shape {arr.shape} != expected {want} (one per output channel)")
        problem = check_bias_mantissa(arr, bias_range(spec.layer(name)))
        if problem is not None:
            raise SpikeRegError(f"layer {name!r}: {problem}")
        if np.any(arr != 0):
            out[name] = arr.astype(np.int64)
    return out


def bias_start_step(spec: NetworkSpec, layer: str) -> int:
    """The Lava step from which `layer`'s bias acts: when its first input arrives (its depth, one less with
    input_mode "bias", where every layer runs one step earlier)."""
    return spec.depths()[layer] - (1 if spec.input_mode == "bias" else 0)


def channel_bias(bias: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A per-channel bias broadcast over a (C, D, H, W) map (int64)."""
    return np.broadcast_to(np.asarray(bias, dtype=np.int64).reshape(-1, *([1] * (len(shape) - 1))), shape).copy()
