"""Import a SpikeReg reference checkpoint (`spikereg-export CKPT --from spikereg`) as a network description plus
integer weights, layer by layer, saying for each layer what maps exactly and what only to the nearest construct.

Mapping (docs/spikereg-import.md has the table and the measured differences):
- every SpikeReg spiking conv (conv + BN + LIF) becomes one layer: BN folded into the conv (exact in float), the
  LIF `u = tau u + I; spike = u >= v_th; u = v_reset` a CUBA neuron with iDecay 4096 (no current memory) and
  vDecay = (1 - tau) x 4096, reset to zero; the folded bias (conv bias + BN shift, part of I at every step) the
  layer's Loihi bias, which enters the voltage at every step as I's bias does (exact up to its integer mantissa);
- a residual shortcut is its own layer; whoever read the sum of both paths' spikes reads both with the same
  weight (exact: a conv of a sum is the sum of the convs);
- an averaging skip merge is a concatenation with the refine conv's weight halved for both parts (exact);
- the output's 1x1 conv and fixed 3x3x3 depthwise smoothing compose into one 3x3x3 readout (exact), its bias the
  readout's per-channel bias (exact away from the faces, where SpikeReg's zero-padded smoothing sums fewer taps);
- not representable, so dropped or replaced by the nearest thing, and said so per layer: top-k lateral inhibition,
  rates passed between levels as static currents (spikes here), per-level time windows (one T here), a non-zero
  reset potential, a bias beyond Loihi's 13-bit mantissa (clipped).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.layer_bias import bias_key, bias_range
from spikereg_deploy.network import LayerSpec, NetworkSpec
from spikereg_deploy.neurons import CubaNeuron
from spikereg_deploy.quantization import (
    BIAS_MANT_MAX,
    BIAS_MANT_MIN,
    DECAY_UNITY,
    THRESHOLD_MANT_MAX,
    THRESHOLD_MANT_MIN,
    WEIGHT_MAX,
    WEIGHT_MIN,
    WEIGHT_SCALE,
    decay_from_fraction,
)

from .spikereg_model import (
    ENCODER,
    IN_CHANNELS,
    SpikeRegCheckpoint,
    Unit,
    bottleneck_unit,
    decoder_levels,
    encoder_units,
    fold_batchnorm,
)

NETWORK_NAME = "spikereg-reference-import"
OUTPUT_KEYS = ("output_projection.conv.weight", "output_projection.conv.bias", "output_projection.smooth.weight")


@dataclass(frozen=True)
class LayerMapping:
    """How one layer here came from SpikeReg: its modules, exact or nearest, and why."""

    name: str
    spikereg: str
    status: str  # "exact" (up to 8-bit quantization) or "nearest"
    notes: tuple[str, ...]
    weight_scale: float  # float weight x weight_scale x 64 = the mantissa stored
    spikereg_window: int
    max_bias: float  # largest |folded bias| per step, in units of the layer's threshold (readout: voxels)
    bias_clipped: bool  # whether any channel's bias mantissa had to be clipped to its range


@dataclass(frozen=True)
class ImportedNetwork:
    """The imported network: description, integer mantissas (weights, and biases under `<layer>/bias`), the float
    values they quantize (same keys), and the mapping."""

    spec: NetworkSpec
    weights: dict[str, np.ndarray]
    float_weights: dict[str, np.ndarray]
    layers: tuple[LayerMapping, ...]
    consumed: frozenset[str]
    checkpoint: SpikeRegCheckpoint


class _Tracked:
    """The checkpoint's arrays, remembering which keys were read: every tensor must be consumed."""

    def __init__(self, ckpt: SpikeRegCheckpoint) -> None:
        self.ckpt = ckpt
        self.used: set[str] = set()

    def unit(self, unit: Unit) -> dict:
        self.used.update(unit.shapes())
        return self.ckpt.unit_params(unit)

    def take(self, key: str) -> np.ndarray:
        self.used.add(key)
        return self.ckpt.tensors[key]


def power_of_two_scale(peak: float) -> float:
    """Largest power of two s with peak x s x 64 inside the 8-bit mantissa range: a power of two, so weights already
    on the mantissa grid stay exactly on it, at the cost of at most one bit of range."""
    if peak <= 0:
        return 1.0
    return 2.0 ** math.floor(math.log2(WEIGHT_MAX / WEIGHT_SCALE / peak))


def quantize(weight: np.ndarray, scale: float) -> np.ndarray:
    """Even mantissas in [-256, 254] (SLAYER's quantize_8bit grid) of weight x scale."""
    mant = 2 * np.round(weight * scale * WEIGHT_SCALE / 2)
    return np.clip(mant, WEIGHT_MIN, WEIGHT_MAX).astype(np.int64)


def quantize_bias(bias: np.ndarray, scale: float, limits: tuple[int, int]) -> tuple[np.ndarray, str]:
    """Bias mantissas (exponent 6: the a_in units of the layer's weights, whose float x scale x 64 are mantissas)
    of bias x scale, clipped to `limits`, and a note saying how many channels were clipped ("" if none)."""
    wanted = np.round(np.asarray(bias, dtype=np.float64) * scale * WEIGHT_SCALE)
    clipped = int(((wanted < limits[0]) | (wanted > limits[1])).sum())
    note = (f"{clipped} channel(s) of the bias clipped to [{limits[0]}, {limits[1]}] (largest wanted "
            f"{int(np.abs(wanted).max())})") if clipped else ""
    return np.clip(wanted, *limits).astype(np.int64), note


def _neuron(params: Mapping, scale: float) -> tuple[CubaNeuron, float]:
    """CUBA neuron for a SpikeReg LIF, and the weight scale once the threshold fits its 17-bit mantissa."""
    while params["v_th"] * scale * WEIGHT_SCALE > THRESHOLD_MANT_MAX:
        scale /= 2
    vth = int(np.clip(round(params["v_th"] * scale * WEIGHT_SCALE), THRESHOLD_MANT_MIN, THRESHOLD_MANT_MAX))
    neuron = CubaNeuron(i_decay=DECAY_UNITY, v_decay=decay_from_fraction(1.0 - params["tau_u"]), vth_mant=vth)
    return neuron, scale


def _sources(level: int) -> tuple[str, ...]:
    """Layers whose spikes make up encoder level `level`'s output (main path, plus the residual shortcut)."""
    return tuple(unit.name for unit in encoder_units(level))


def _repeat(weight: np.ndarray, copies: int, factor: float = 1.0) -> list[np.ndarray]:
    return [weight * factor] * copies


class _Builder:
    def __init__(self, ckpt: SpikeRegCheckpoint) -> None:
        self.src = _Tracked(ckpt)
        self.ckpt = ckpt
        self.time_steps = max(ckpt.encoder_windows + ckpt.decoder_windows)
        self.layers: list[LayerSpec] = [LayerSpec("input", "input", IN_CHANNELS, kernel=1, padding=0)]
        self.weights: dict[str, np.ndarray] = {}
        self.float_weights: dict[str, np.ndarray] = {}
        self.mappings: list[LayerMapping] = []

    def add(self, unit: Unit, inputs: tuple[str, ...], parts: list[np.ndarray] | None, window: int,
            notes: list[str]) -> None:
        """One spiking layer from `unit`: its folded weight (or, for merged inputs, `parts` along the input axis)."""
        params = self.src.unit(unit)
        weight, bias = fold_batchnorm(params, unit.transposed)
        if parts is not None:
            weight = np.concatenate([fold_batchnorm({**params, "weight": p}, unit.transposed)[0] for p in parts],
                                    axis=0 if unit.transposed else 1)
        neuron, scale = _neuron(params, power_of_two_scale(float(np.abs(weight).max())))
        mant, clipped = quantize_bias(bias, scale, (BIAS_MANT_MIN, BIAS_MANT_MAX))
        relative = float(np.abs(bias).max()) / params["v_th"]
        if clipped:  # a bias that does not fit is nearest, not exact: say so
            notes.append(clipped)
        if mant.any():
            self.weights[bias_key(unit.name)] = mant
            self.float_weights[bias_key(unit.name)] = bias
        if params["v_reset"] != 0:
            notes.append(f"hard reset to v_reset = {params['v_reset']:g}: reset to 0 here (CUBA)")
        if window != self.time_steps:
            notes.append(f"SpikeReg runs this level for {window} steps; every layer runs T = {self.time_steps} here")
        self.layers.append(LayerSpec(unit.name, "convT" if unit.transposed else "conv", unit.out_channels,
                                     inputs=inputs, kernel=unit.kernel, stride=unit.stride, padding=unit.padding,
                                     neuron=neuron))
        self.float_weights[unit.name] = weight
        self.weights[unit.name] = quantize(weight, scale)
        exact = not notes
        if relative > 0:
            notes.append(f"folded bias (conv bias + BN shift, up to {relative:.3g} x threshold per step) as the "
                         "layer's Loihi bias" + ("" if clipped else " (exact)"))
        self.mappings.append(LayerMapping(unit.name, unit.prefix, "exact" if exact else "nearest", tuple(notes),
                                          scale, window, relative, bool(clipped)))

    def encoder(self) -> None:
        for level, window in enumerate(self.ckpt.encoder_windows):
            inputs = ("input",) if level == 0 else _sources(level - 1)
            for unit in encoder_units(level):
                notes = []
                if level > 0:
                    notes.append("reads the previous level's spike rate (mean over its window) as a static current; "
                                 "its spikes step by step here")
                if unit.inhibition:
                    notes.append("top-k lateral inhibition (the 10 % largest membranes kept each step) dropped: a "
                                 "global sort has no Loihi equivalent")
                if unit.name.endswith("_short"):
                    notes.append("residual shortcut: its spikes were added to the main path's; a layer of its own "
                                 "here, read with the same weights by every consumer (exact)")
                parts = None
                if len(inputs) > 1:  # the previous level's main + shortcut spikes were summed: same weight for both
                    parts = _repeat(self.src.ckpt.unit_params(unit)["weight"], len(inputs))
                self.add(unit, inputs, parts, window, notes)
        unit = bottleneck_unit()
        notes = ["reads encoder level 3's spike rate as a static current; its spikes here",
                 "top-k lateral inhibition dropped (no Loihi equivalent)"]
        inputs = _sources(len(ENCODER) - 1)
        self.add(unit, inputs, _repeat(self.src.ckpt.unit_params(unit)["weight"], len(inputs)),
                 self.ckpt.encoder_windows[-1], notes)

    def decoder(self) -> None:
        prev, prev_window = "bottleneck", self.ckpt.encoder_windows[-1]
        for dec, window in zip(decoder_levels(), self.ckpt.decoder_windows, strict=True):
            notes = []
            if window > prev_window:
                notes.append(f"SpikeReg repeats its input's last frame for steps {prev_window}..{window - 1}; every "
                             "step reads its input's own step here")
            self.add(dec.upconv, (prev,), None, window, notes)
            w = self.src.ckpt.unit_params(dec.refine)["weight"]
            skip = _sources(dec.skip_level)
            cout = dec.upconv.out_channels
            notes = []
            if dec.merge == "concatenate":
                inputs, parts = (dec.upconv.name, *skip), [w[:, :cout], *_repeat(w[:, cout:], len(skip))]
                notes.append(f"skip: encoder level {dec.skip_level}'s spike rate as a static current; its spikes "
                             "here")
            elif dec.merge == "average":
                inputs, parts = (dec.upconv.name, *skip), _repeat(w, 1 + len(skip), 0.5)
                notes.append(f"averaging skip merge = concatenation with the refine weight halved (exact); the skip is "
                             f"encoder level {dec.skip_level}'s spike rate as a static current, its spikes here")
            else:
                inputs, parts = (dec.upconv.name,), None
            self.add(dec.refine, inputs, parts, window, notes)
            prev, prev_window = dec.refine.name, window

    def readout(self) -> None:
        proj = self.src.take(OUTPUT_KEYS[0])[:, :, 0, 0, 0]  # (3, C)
        proj_bias = self.src.take(OUTPUT_KEYS[1])
        smooth = self.src.take(OUTPUT_KEYS[2])[:, 0]  # (3, 3, 3, 3): one kernel per output channel
        weight = proj[:, :, None, None, None] * smooth[:, None]  # depthwise smoothing after a 1x1 conv: one conv
        scale = power_of_two_scale(float(np.abs(weight).max()))
        last = self.layers[-1].name
        self.layers.append(LayerSpec("readout", "readout", 3, inputs=(last,), kernel=3, padding=1))
        self.float_weights["readout"] = weight
        self.weights["readout"] = quantize(weight, scale)
        notes = ["1x1 projection and fixed 3x3x3 depthwise smoothing composed into one 3x3x3 readout (exact)"]
        # the projection's bias after the smoothing: bias x (sum of each kernel's taps) wherever all taps fall
        # inside the volume; at the faces the zero padding sums fewer of them, which one per-channel bias cannot
        smoothed = proj_bias * smooth.reshape(3, -1).sum(axis=1)
        mant, clipped = quantize_bias(smoothed, scale, bias_range(self.layers[-1]))
        if mant.any():
            self.weights[bias_key("readout")] = mant
            self.float_weights[bias_key("readout")] = smoothed
        peak = float(np.abs(smoothed).max()) * self.ckpt.displacement_scale
        if peak > 0:
            notes.append(f"projection bias (up to {peak:.3g} voxels after the smoothing) as the readout's bias: exact "
                         "away from the faces; within one voxel of a face SpikeReg's zero-padded smoothing sums "
                         "fewer taps of it" + (f"; {clipped}" if clipped else ""))
        window = self.ckpt.decoder_windows[-1]
        if window != self.time_steps:
            notes.append(f"SpikeReg averages its last decoder's {window} steps; the mean over T here")
        self.mappings.append(LayerMapping("readout", "output_projection", "nearest" if peak > 0 else "exact",
                                          tuple(notes), scale, window, peak, bool(clipped)))
        self.readout_scale = self.ckpt.displacement_scale / (scale * WEIGHT_SCALE)

    def build(self) -> ImportedNetwork:
        self.encoder()
        self.decoder()
        self.readout()
        self.src.take("spike_encoding_window")  # its Poisson input window: the input is analog here
        left = sorted(set(self.ckpt.tensors) - self.src.used)
        if left:
            raise SpikeRegError(f"key {left[0]!r} was not mapped", self.ckpt.source)
        spec = NetworkSpec(tuple(self.layers), time_steps=self.time_steps, input_channels=IN_CHANNELS,
                           readout_scale=self.readout_scale, name=NETWORK_NAME, input_mode="analog")
        return ImportedNetwork(spec, self.weights, self.float_weights, tuple(self.mappings),
                               frozenset(self.src.used), self.ckpt)


def import_checkpoint(ckpt: SpikeRegCheckpoint) -> ImportedNetwork:
    """Map a validated SpikeReg checkpoint onto this project's network description (every tensor consumed)."""
    return _Builder(ckpt).build()


def format_mapping(imported: ImportedNetwork) -> str:
    """One line per layer: name, SpikeReg module, exact / nearest, and the reasons."""
    lines = [f"SpikeReg import ({imported.checkpoint.source}): T = {imported.spec.time_steps}, input analog "
             "(8-bit, every step)"]
    for m in imported.layers:
        lines.append(f"  {m.name:<12} {m.spikereg:<28} {m.status:<8} {'; '.join(m.notes) or '-'}")
    return "\n".join(lines)
