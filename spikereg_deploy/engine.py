"""The integer reference engine: Loihi's arithmetic for a whole `NetworkSpec`, vectorised with torch.

This is the model's computation (no pipeline shift): at model step t every layer sees step t of its inputs. The Lava
run computes the same integers shifted by each layer's depth; `tests/test_lava_*.py` prove both agree spike for spike.
Events are counted per synapse as they happen, by the rules in `counting.py`: spikes that arrive, the synapses they
reach (exact fan-out), the analog input's real taps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import fixed_point as fx
from .counting import (
    LayerCounts,
    analog_input_macs,
    analog_macs_per_step,
    edge_fanout,
    events,
    neuron_updates,
    step_synops,
)
from .errors import SpikeRegError
from .layer_bias import channel_bias, checked_biases, split_parameters
from .network import Edge, LayerSpec, NetworkSpec

FLOAT32_EXACT = 1 << 24  # integers up to 2^24 survive a float32 sum exactly


@dataclass
class IntegerRun:
    displacement: np.ndarray | None  # (3, D, H, W) float64, voxels; None without a readout (plain NetX)
    readout_sum: np.ndarray | None  # (3, D, H, W) int64: sum over T of the readout's integer synaptic input
    counts: dict[str, LayerCounts]
    time_steps: int
    # per layer, per step, (C, D, H, W) if recorded: bool spikes, or int64 payloads of graded layers
    spikes: dict[str, list[np.ndarray]] | None = None
    output_spikes: np.ndarray | None = None  # without a readout: the last layer's spikes (C, D, H, W, T), bool
    # (graded layers: int64 payloads)


def check_run_input(spec: NetworkSpec, image: np.ndarray) -> None:
    """The input a run takes: (C, D, H, W) analog values in [0, 1], or with input_mode "spikes" a (C, D, H, W, T)
    train of 0/1 spikes, T = the network's."""
    spikes = spec.input_mode == "spikes"
    want = f"({spec.input_channels}, D, H, W{', T=' + str(spec.time_steps) if spikes else ''})"
    if image.ndim != (5 if spikes else 4) or image.shape[0] != spec.input_channels or (
            spikes and image.shape[-1] != spec.time_steps):
        raise SpikeRegError(f"input must be {want}, got {tuple(image.shape)}")
    if spikes and not np.isin(image, (0, 1)).all():
        raise SpikeRegError("a spike-train input holds only 0 and 1")


def max_abs_row_sum(weight: np.ndarray, layer: LayerSpec) -> int:
    """Largest sum of |w| into one output channel: bounds |synaptic sum| for unit payloads."""
    out_axis = layer.weight_channel_axes[1]
    return int(np.abs(weight).sum(axis=tuple(i for i in range(weight.ndim) if i != out_axis)).max(initial=0))


def analog_shift(layer: LayerSpec) -> int:
    """The analog current's shift into the layer's a_in units (its neuron model's; 0 for a readout)."""
    return layer.neuron.analog_input_shift if layer.neuron is not None else 0


def synaptic_sum(layer: LayerSpec, x: torch.Tensor, w: torch.Tensor, exact_dtype: torch.dtype) -> torch.Tensor:
    """Integer sum of weights x presynaptic values through a conv/transposed conv (exact in float)."""
    xin = x.to(exact_dtype)[None]
    if layer.kind == "convT":
        out = F.conv_transpose3d(xin, w, stride=layer.stride, padding=layer.padding,
                                 output_padding=layer.output_padding)
    else:
        out = F.conv3d(xin, w, stride=layer.stride, padding=layer.padding)
    return out[0].to(torch.int64)  # exact integers in this dtype: the cast loses nothing


class IntegerNetwork:
    """A network ready to run in Loihi integers: weights split per edge, fan-out maps built per input shape.

    `weights` is the parameter mapping: weight mantissas by layer, plus any layer's per-channel bias under
    `<layer>/bias` (`layer_bias.py`)."""

    def __init__(self, spec: NetworkSpec, weights: dict[str, np.ndarray]) -> None:
        self.spec = spec
        self.edges = spec.edges()
        self.edge_weights: dict[tuple[str, str], np.ndarray] = {}
        weights, biases = split_parameters(weights)
        extra = sorted(set(weights) - {layer.name for layer in spec.layers[1:]})
        if extra:
            raise SpikeRegError(f"weights given for unknown layer(s) {', '.join(map(str, extra))}")
        #: layer -> int64 (out_channels,) bias mantissas, only the layers with a non-zero bias
        self.biases = checked_biases(spec, biases)
        for name in self.biases:
            neuron = spec.layer(name).neuron
            if neuron is not None and not neuron.supports_bias:
                raise SpikeRegError(f"layer {name!r}: neuron type {neuron.netx_type} has no bias")
        for layer in spec.layers[1:]:
            if layer.name not in weights:
                raise SpikeRegError(f"no weights for layer {layer.name!r}")
            w = np.asarray(weights[layer.name])
            if w.shape != spec.weight_shape(layer.name):
                raise SpikeRegError(f"layer {layer.name!r}: weight shape {w.shape}, expected "
                                    f"{spec.weight_shape(layer.name)}")
            problem = fx.check_weight_mantissa(w)
            if problem:
                raise SpikeRegError(f"layer {layer.name!r}: {problem}")
            for edge in spec.edges_into(layer.name):
                self.edge_weights[(edge.src, edge.dst)] = w.astype(np.int64)[spec.edge_weight_slice(edge)]

    def _exact_dtype(self, edge: Edge, payload_max: int) -> torch.dtype:
        bound = max_abs_row_sum(self.edge_weights[(edge.src, edge.dst)], self.spec.layer(edge.dst))
        return torch.float32 if bound * payload_max < FLOAT32_EXACT else torch.float64

    def input_bias(self, image: np.ndarray) -> dict[str, torch.Tensor]:
        """input_mode "bias": each input-fed layer's static current `sum(w * x_q) >> 8`, computed once (what the
        host loads as the neurons' bias mantissas, exponent 6), range-checked against Loihi's 13-bit mantissa."""
        x_q = fx.quantize_input(torch.as_tensor(np.asarray(image, dtype=np.float64)))
        bias = {}
        for edge in self.edges:
            if edge.payload == "analog":
                layer = self.spec.layer(edge.dst)
                dtype = self._exact_dtype(edge, (1 << edge.payload_bits) - 1)
                weight = torch.as_tensor(self.edge_weights[(edge.src, edge.dst)]).to(dtype)
                bias[layer.name] = fx.input_bias_mantissa(
                    fx.analog_current(synaptic_sum(layer, x_q, weight, dtype)), layer.name)
        return bias

    def layer_bias(self, input_bias: dict[str, torch.Tensor], geo: dict) -> dict[str, torch.Tensor]:
        """Each biased layer's bias mantissas over its whole map: its own per-channel bias plus, with input_mode
        "bias", the static input current; the sum must still fit Loihi's 13-bit mantissa."""
        out = dict(input_bias)
        for name, channel in self.biases.items():
            shape = (self.spec.layer(name).out_channels, *geo[name].out_shape)
            own = torch.as_tensor(channel_bias(channel, shape))
            out[name] = fx.input_bias_mantissa(out[name] + own, name) if name in out else own
        return out

    def _merged_weights(self) -> dict[str, tuple[torch.Tensor, torch.dtype]]:
        """Whole-layer weights for layers fed only by spiking sources, where one float conv stays exact.

        Lava keeps one synapse per edge (a concatenation costs no copy there); here one conv over the concatenated
        spikes gives the same integer sum with less work, which is what makes the engine usable at full size.
        """
        merged = {}
        for layer in self.spec.layers[1:]:
            edges = self.spec.edges_into(layer.name)
            if len(edges) < 2 or any(e.payload == "analog" for e in edges):
                continue
            axis = layer.weight_channel_axes[0]
            weight = np.concatenate([self.edge_weights[(e.src, e.dst)] for e in edges], axis=axis)
            payload_max = max((1 << e.payload_bits) - 1 for e in edges)  # graded sources send up to this
            if max_abs_row_sum(weight, layer) * payload_max < FLOAT32_EXACT:
                merged[layer.name] = (torch.as_tensor(weight).to(torch.float32), torch.float32)
        return merged

    def run(self, image: np.ndarray, record_spikes: bool = False, progress: bool = False) -> IntegerRun:
        """Run T model steps on a (C, D, H, W) float image in [0, 1] (the analog input, quantized to 8 bits)."""
        spec = self.spec
        check_run_input(spec, image)
        geo = spec.geometry(image.shape[1:4])
        spike_input = spec.input_mode == "spikes"
        if spike_input:  # one frame per step, as SLAYER blocks and netx take it
            frames = torch.as_tensor(np.asarray(image, dtype=bool))
        else:
            x_q = fx.quantize_input(torch.as_tensor(np.asarray(image, dtype=np.float64)))
        dtypes: dict[tuple[str, str], torch.dtype] = {}
        torch_w: dict[tuple[str, str], torch.Tensor] = {}
        fanouts: dict[tuple[str, str], torch.Tensor] = {}
        for edge in self.edges:
            key = (edge.src, edge.dst)
            dtypes[key] = self._exact_dtype(edge, (1 << edge.payload_bits) - 1)
            torch_w[key] = torch.as_tensor(self.edge_weights[key]).to(dtypes[key])
            fanouts[key] = torch.as_tensor(edge_fanout(spec, geo, edge)).to(torch.int32)
        merged = self._merged_weights()
        analog_current: dict[tuple[str, str], torch.Tensor] = {}  # the input is the same at every step: once
        bias_mode = spec.input_mode == "bias"
        # input_mode "bias": layer -> its static current as bias mantissas, computed once per inference
        bias = self.layer_bias(self.input_bias(image) if bias_mode else {}, geo)
        counts = {layer.name: LayerCounts(layer.name, geo[layer.name].neurons) for layer in spec.layers[1:]}
        state: dict[str, tuple[torch.Tensor, ...]] = {}
        for layer in spec.layers[1:]:
            if layer.neuron is not None:
                state[layer.name] = layer.neuron.init_state((layer.out_channels, *geo[layer.name].out_shape), torch)
        readout_sum = torch.zeros((spec.readout.out_channels, *geo[spec.readout.name].out_shape), dtype=torch.int64)
        recorded: dict[str, list[np.ndarray]] | None = {n: [] for n in counts} if record_spikes else None
        output: list[np.ndarray] = []  # the last layer's spikes, when the network ends in spikes
        steps = range(spec.time_steps)
        if progress:
            from tqdm import tqdm

            steps = tqdm(steps, desc="reference engine", unit="step")
        for _t in steps:
            # spikes per voxel (summed over channels) and in total, per layer: counted once where they are emitted,
            # reused by every synapse they reach
            per_voxel: dict[str, torch.Tensor] = {}
            emitted: dict[str, int] = {}
            if spike_input:
                frame = frames[..., _t]
                outputs: dict[str, torch.Tensor] = {spec.input_layer.name: frame}
                per_voxel[spec.input_layer.name] = frame.sum(dim=0, dtype=torch.int32)
                emitted[spec.input_layer.name] = int(per_voxel[spec.input_layer.name].sum(dtype=torch.int64))
            else:
                outputs = {spec.input_layer.name: x_q}
            for layer in spec.layers[1:]:
                c = counts[layer.name]
                parts: list[torch.Tensor] = []
                layer_synops = layer_graded = 0
                for edge in spec.edges_into(layer.name):
                    key = (edge.src, edge.dst)
                    src_out = outputs[edge.src]
                    if edge.payload == "analog":
                        if bias_mode:  # the bias holds the input; no synapse runs per step
                            parts.append(torch.zeros_like(bias[layer.name]))
                            continue
                        if key not in analog_current:
                            analog_current[key] = fx.analog_current(
                                synaptic_sum(layer, src_out, torch_w[key], dtypes[key]), analog_shift(layer))
                        parts.append(analog_current[key])
                        c.input_macs += analog_macs_per_step(spec, geo, edge)  # every real tap, every step
                        continue
                    c.input_spikes += emitted[edge.src]
                    if edge.payload == "graded":
                        layer_graded += step_synops(per_voxel[edge.src], fanouts[key])
                    else:
                        layer_synops += step_synops(per_voxel[edge.src], fanouts[key])
                    if layer.name not in merged:
                        parts.append(synaptic_sum(layer, src_out, torch_w[key], dtypes[key]))
                if layer.name in merged:  # one conv over the concatenated spikes, as the ANN does
                    weight, dtype = merged[layer.name]
                    stacked = torch.cat([outputs[src] for src in layer.inputs])
                    parts.append(synaptic_sum(layer, stacked, weight, dtype))
                a_in = parts[0] if len(parts) == 1 else torch.stack(parts).sum(dim=0)
                c.synops += layer_synops
                c.synops_per_step.append(layer_synops)
                c.graded_synops += layer_graded
                c.graded_synops_per_step.append(layer_graded)
                if layer.kind == "readout":
                    readout_sum += a_in + bias[layer.name] if layer.name in bias else a_in
                    continue
                assert layer.neuron is not None
                if layer.name in bias:
                    state[layer.name], spikes = layer.neuron.step_biased(state[layer.name], a_in, bias[layer.name])
                else:
                    state[layer.name], spikes = layer.neuron.step(state[layer.name], a_in)
                per_voxel[layer.name] = events(spikes).sum(dim=0, dtype=torch.int32)
                n_spk = emitted[layer.name] = int(per_voxel[layer.name].sum(dtype=torch.int64))
                c.spikes += n_spk
                c.payload_sum += int(spikes.abs().sum(dtype=torch.int64)) if spikes.dtype != torch.bool else n_spk
                c.spikes_per_step.append(n_spk)
                outputs[layer.name] = spikes
                if recorded is not None:
                    recorded[layer.name].append(spikes.numpy().copy())
                if layer is spec.readout:
                    output.append(spikes.numpy().copy())
        for edge in self.edges:
            if bias_mode and edge.payload == "analog":
                counts[edge.dst].input_macs = analog_input_macs(spec, geo, edge)  # once per inference
        for c in counts.values():
            c.neuron_updates = neuron_updates(c.neurons, spec.time_steps)
        if not spec.has_readout:
            return IntegerRun(None, None, counts, spec.time_steps, recorded, np.stack(output, axis=-1))
        displacement = readout_sum.numpy().astype(np.float64) * (spec.readout_scale / spec.time_steps)
        return IntegerRun(displacement, readout_sum.numpy(), counts, spec.time_steps, recorded)


def estimate_engine_memory(spec: NetworkSpec, input_shape: tuple[int, int, int]) -> int:
    """Bytes the reference engine holds at its peak (states, one step of outputs, fan-out maps), roughly."""
    geo = spec.geometry(input_shape)
    states = sum(8 * len(neuron.state_names) * g.neurons for n, g in geo.items()
                 if (neuron := spec.layer(n).neuron) is not None)
    outputs = sum(g.neurons for g in geo.values()) * 9  # bool spikes + one int64 a_in per layer at a time
    fan = sum(8 * math.prod(geo[e.src].out_shape) for e in spec.edges())
    return states + outputs + fan
