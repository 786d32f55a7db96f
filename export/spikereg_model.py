"""Facts about the SpikeReg reference implementation's checkpoints (alim98/SpikeReg, commit 09ed0b5f, files
SpikeReg/models.py, layers.py, neurons.py, training.py): its module tree, state-dict keys and shapes, and how one
checkpoint file is read and validated key by key.

The one place these facts live: the importer (`spikereg_import.py`) maps the tree onto a `NetworkSpec`, the float
re-implementation (`spikereg_reference.py`) runs it. Written from the reference's description, no code taken from it.

SpikeRegUNet (its defaults, the architecture issue 18 names): 4 encoder blocks, each a stride-2 3x3x3 conv + BN + LIF
(blocks 1-3 with top-k lateral inhibition, blocks 2-3 with a residual 1x1 stride-2 spiking shortcut whose spikes are
added to the main path's); a 3x3x3 bottleneck with inhibition; 4 decoder blocks, each a 2x2x2 stride-2 transposed
conv + BN + LIF ("upconv"), a skip merge (concatenate / average / none) and a 3x3x3 conv + BN + LIF ("refine"); an
output projection (1x1 conv with bias, then a fixed depthwise 3x3x3 smoothing conv, times displacement_scale).
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from spikereg_deploy.errors import SpikeRegError

#: The SpikeReg commit the facts here were read from (documented in docs/spikereg-import.md).
SPIKEREG_COMMIT = "09ed0b5fc098ab68996fe603e15d6b2792c1425d"
ENCODER = (16, 32, 64, 128)
DECODER = (64, 32, 16, 16)
IN_CHANNELS = 2
#: SpikeRegUNet's defaults for what a state dict does not hold (its trainer's `config['model']` may override them).
DEFAULT_WINDOWS = {"encoder_time_windows": (10, 8, 6, 4), "decoder_time_windows": (4, 6, 8, 10),
                   "input_time_window": 10}
#: SpikeRegUNet's default leak factors (LIF buffers `tau_u`; a checkpoint holds its own): per encoder level (its
#: shortcut shares it), bottleneck, per decoder block.
ENCODER_TAU = (0.9, 0.8, 0.8, 0.7)
BOTTLENECK_TAU = 0.7
DECODER_TAU = (0.7, 0.8, 0.8, 0.9)
DEFAULT_SKIP_MERGE = ("concatenate", "average", "concatenate", "none")
DEFAULT_DISPLACEMENT_SCALE = 1.0
BN_EPS = 1e-5  # torch BatchNorm3d's default, which SpikeReg keeps
INHIBITION_K_FRACTION = 0.1  # LateralInhibition's k_fraction in SpikingConv3d
BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
NEURON_KEYS = ("tau_u", "v_th", "v_reset")
STATE_KEYS = ("model_state_dict", "state_dict")  # what SpikeReg's trainer (and common trainers) wrap it in


@dataclass(frozen=True)
class Unit:
    """One spiking conv of SpikeReg (SpikingConv3d / SpikingTransposeConv3d): conv + BN + LIF under `prefix`."""

    name: str  # the layer name it becomes here
    prefix: str  # its state-dict prefix, e.g. "encoder_blocks.2.shortcut"
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    padding: int
    transposed: bool = False
    inhibition: bool = False

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """State-dict keys of this unit with their shapes (conv weight in torch's layout, 0-d buffers as ())."""
        k = (self.kernel,) * 3
        weight = (self.in_channels, self.out_channels, *k) if self.transposed else (
            self.out_channels, self.in_channels, *k)
        out = {f"{self.prefix}.conv.weight": weight, f"{self.prefix}.conv.bias": (self.out_channels,)}
        for key in BN_KEYS:
            out[f"{self.prefix}.bn.{key}"] = () if key == "num_batches_tracked" else (self.out_channels,)
        for key in NEURON_KEYS:
            out[f"{self.prefix}.neurons.{key}"] = ()
        return out


@dataclass(frozen=True)
class DecoderLevel:
    """A decoder block: its upconv and refine units, the merge, and the encoder level its skip comes from."""

    index: int
    upconv: Unit
    refine: Unit
    merge: str
    skip_level: int


def encoder_units(level: int) -> list[Unit]:
    """Encoder block `level`: the main conv (inhibition from level 1) and, from level 2, the residual shortcut."""
    cin = IN_CHANNELS if level == 0 else ENCODER[level - 1]
    cout = ENCODER[level]
    units = [Unit(f"enc{level}", f"encoder_blocks.{level}.conv", cin, cout, 3, 2, 1, inhibition=level > 0)]
    if level > 1:
        units.append(Unit(f"enc{level}_short", f"encoder_blocks.{level}.shortcut", cin, cout, 1, 2, 0))
    return units


def bottleneck_unit() -> Unit:
    return Unit("bottleneck", "bottleneck", ENCODER[-1], ENCODER[-1], 3, 1, 1, inhibition=True)


def decoder_levels(skip_merge: tuple[str, ...] = DEFAULT_SKIP_MERGE) -> list[DecoderLevel]:
    """The decoder blocks: block i reads the previous block (the bottleneck for i = 0) and encoder level
    len(ENCODER) - 2 - i as its skip (level 0 once that runs out, as SpikeRegUNet.forward does)."""
    levels = []
    prev = ENCODER[-1]
    for i, cout in enumerate(DECODER):
        skip_level = len(ENCODER) - 2 - i if i + 2 <= len(ENCODER) else 0
        merge = skip_merge[i]
        refine_in = cout + ENCODER[skip_level] if merge == "concatenate" else cout
        up = Unit(f"dec{i}_up", f"decoder_blocks.{i}.upconv", prev, cout, 2, 2, 0, transposed=True)
        refine = Unit(f"dec{i}", f"decoder_blocks.{i}.refine", refine_in, cout, 3, 1, 1)
        levels.append(DecoderLevel(i, up, refine, merge, skip_level))
        prev = cout
    return levels


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every key of a SpikeRegUNet state dict (this architecture, default merges) with its shape, in module order."""
    out: dict[str, tuple[int, ...]] = {}
    for level in range(len(ENCODER)):
        for unit in encoder_units(level):
            out.update(unit.shapes())
    out.update(bottleneck_unit().shapes())
    for dec in decoder_levels():
        out.update(dec.upconv.shapes())
        out.update(dec.refine.shapes())
    out["output_projection.conv.weight"] = (3, DECODER[-1], 1, 1, 1)
    out["output_projection.conv.bias"] = (3,)
    out["output_projection.smooth.weight"] = (3, 1, 3, 3, 3)
    out["spike_encoding_window"] = ()
    return out


ARCHITECTURE = f"SpikeReg U-Net, encoder {list(ENCODER)}, decoder {list(DECODER)}"


@dataclass(frozen=True)
class SpikeRegCheckpoint:
    """A validated SpikeReg state dict (float64 numpy arrays, every key checked) and the windows it runs with."""

    tensors: dict[str, np.ndarray]
    encoder_windows: tuple[int, ...]
    decoder_windows: tuple[int, ...]
    input_window: int
    displacement_scale: float
    source: str

    def unit_params(self, unit: Unit) -> dict[str, Any]:
        """Raw parameters of one unit: conv weight and bias, BN arrays, LIF scalars."""
        p = self.tensors
        return {"weight": p[f"{unit.prefix}.conv.weight"], "bias": p[f"{unit.prefix}.conv.bias"],
                **{f"bn_{k}": p[f"{unit.prefix}.bn.{k}"] for k in BN_KEYS[:4]},
                **{k: float(p[f"{unit.prefix}.neurons.{k}"]) for k in NEURON_KEYS}}


def fold_batchnorm(params: Mapping[str, Any], transposed: bool) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) of conv + eval-mode BN as one conv: w * g / sqrt(var + eps), (b - mean) * g / sqrt(var + eps)
    + beta. Exact in real arithmetic (BN in eval mode is a per-channel affine map after a linear conv)."""
    gain = params["bn_weight"] / np.sqrt(params["bn_running_var"] + BN_EPS)
    shape = (1, -1, 1, 1, 1) if transposed else (-1, 1, 1, 1, 1)
    weight = params["weight"] * gain.reshape(shape)
    bias = (params["bias"] - params["bn_running_mean"]) * gain + params["bn_bias"]
    return weight, bias


def _state_dict(obj: Any, source: str) -> dict[str, Any]:
    """The state dict inside a loaded checkpoint: plain, or under 'model_state_dict' / 'state_dict', with a
    DataParallel 'module.' prefix removed (SpikeReg's trainer strips it the same way when it loads)."""
    if isinstance(obj, Mapping):
        for key in STATE_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise SpikeRegError("not a SpikeReg checkpoint: expected a state dict, or a dict with 'model_state_dict' or "
                            "'state_dict'", source)
    if all(isinstance(k, str) and k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def _windows(config: Any, source: str) -> tuple[dict[str, Any], float]:
    """Time windows and displacement scale: SpikeRegUNet's defaults, or its trainer's saved config['model']."""
    model = config.get("model", {}) if isinstance(config, Mapping) else {}
    model = model if isinstance(model, Mapping) else {}
    merge = model.get("skip_merge", DEFAULT_SKIP_MERGE)
    if tuple(merge) != DEFAULT_SKIP_MERGE:
        raise SpikeRegError(f"config.model.skip_merge {list(merge)} is not supported (only SpikeReg's default "
                            f"{list(DEFAULT_SKIP_MERGE)})", source)
    windows: dict[str, Any] = {}
    for key, default in DEFAULT_WINDOWS.items():
        value = model.get(key, default)
        values = (value,) if key == "input_time_window" else tuple(value) if isinstance(value, list | tuple) else ()
        want = 1 if key == "input_time_window" else len(default)
        if len(values) < want or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in values):
            raise SpikeRegError(f"config.model.{key} must be {want} positive integer(s), got {value!r}", source)
        windows[key] = values[0] if key == "input_time_window" else values[:want]
    scale = model.get("displacement_scale", DEFAULT_DISPLACEMENT_SCALE)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not math.isfinite(scale) or scale <= 0:
        raise SpikeRegError(f"config.model.displacement_scale must be a positive number, got {scale!r}", source)
    return windows, float(scale)


def validate(state: Mapping[str, Any], source: str, config: Any = None) -> SpikeRegCheckpoint:
    """Check every key against SpikeReg's architecture: a missing key, an unexpected one (e.g. an attention gate),
    a shape from another architecture or a non-finite value is one SpikeRegError naming the key."""
    import torch

    expected = expected_shapes()
    for key, value in state.items():
        if key in expected and not isinstance(value, torch.Tensor):
            raise SpikeRegError(f"key {key!r} is not a tensor ({type(value).__name__})", source)
        if key in expected and tuple(value.shape) != expected[key]:
            raise SpikeRegError(f"key {key!r} has shape {list(value.shape)}, expected {list(expected[key])} "
                                f"({ARCHITECTURE})", source)
    missing = [key for key in expected if key not in state]
    if missing:
        raise SpikeRegError(f"missing key {missing[0]!r} ({ARCHITECTURE}; {len(missing)} missing)", source)
    unexpected = [key for key in state if key not in expected]
    if unexpected:
        hint = (" (attention gates have no mapping: a sigmoid gate multiplies two signals)"
                if ".attention_gate." in unexpected[0] else "")
        raise SpikeRegError(f"unexpected key {unexpected[0]!r}{hint} ({ARCHITECTURE}; {len(unexpected)} "
                            "unexpected)", source)
    tensors: dict[str, np.ndarray] = {}
    for key in expected:
        value = state[key].detach().cpu()
        if not (value.dtype.is_floating_point or key.endswith(("num_batches_tracked", "spike_encoding_window"))):
            raise SpikeRegError(f"key {key!r} has dtype {value.dtype}, expected a float tensor", source)
        array = value.double().numpy()
        if not np.all(np.isfinite(array)):
            raise SpikeRegError(f"key {key!r} holds NaN or infinite values", source)
        tensors[key] = array
    _check_values(tensors, source)
    windows, scale = _windows(config, source)
    return SpikeRegCheckpoint(tensors, windows["encoder_time_windows"], windows["decoder_time_windows"],
                              windows["input_time_window"], scale, source)


def _check_values(tensors: Mapping[str, np.ndarray], source: str) -> None:
    """Values a LIF / BN must have: variances >= 0, thresholds > 0, leaks in (0, 1]."""
    for key, array in tensors.items():
        if key.endswith("running_var") and np.any(array < 0):
            raise SpikeRegError(f"key {key!r} has a negative variance", source)
        if key.endswith("neurons.v_th") and float(array) <= 0:
            raise SpikeRegError(f"key {key!r}: threshold {float(array):g} must be positive", source)
        if key.endswith("neurons.tau_u") and not 0 < float(array) <= 1:
            raise SpikeRegError(f"key {key!r}: leak factor {float(array):g} must be in (0, 1]", source)


def load_checkpoint(path: str | os.PathLike[str]) -> SpikeRegCheckpoint:
    """Read a SpikeReg .pt/.pth file (tensors and plain values only: `weights_only`, nothing executed) and
    validate it; any problem is one SpikeRegError naming the file."""
    import pickle
    import zipfile

    import torch

    source = str(path)
    try:
        obj = torch.load(source, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SpikeRegError("no such file", source) from None
    except IsADirectoryError:
        raise SpikeRegError("is a directory, not a checkpoint", source) from None
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, AttributeError,
            TypeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SpikeRegError(f"cannot read as a torch checkpoint ({reason[:160]})", source) from None
    config = obj.get("config") if isinstance(obj, Mapping) else None
    return validate(_state_dict(obj, source), source, config)
