"""The counting rules, written once: what an event costs is decided here and nowhere else.

- A SynOp is one synapse reached by one binary spike. The SynOps of a step are the arriving spikes times the exact
  fan-out of each: per presynaptic position (every channel at a position reaches the same number of synapses, so
  spikes are summed over channels first) times `connectivity.fanout_map`, summed.
- A graded spike (a nonzero payload of a multi-threshold neuron) is one event, counted like a spike, but each
  synapse it reaches multiplies the weight by the payload: its synaptic events are `graded_synops`, apart from the
  SynOps, and each layer records the payload sum it emitted (`events`: which outputs are events).
- The analog input is multiplied, not added: each real tap costs one multiply-accumulate per step, and a tap whose
  input lies in the padding has no synapse, so it costs nothing (a dense framework would multiply the zero).
  With input_mode "bias" the sum is computed once per inference (`analog_input_macs`), then held as a bias.
- Every neuron (and readout compartment) updates once per step: neurons x steps.
- A projection from a spike rate uses the same fan-out: rate x steps x channels x the exact fan-out sum.

The reference engine, the Lava synapse models and the torch hooks count with these functions, and the mapper
projects with them, so measured and projected numbers cannot drift apart.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import SpikeRegError
from .fanout import fanout_map, fanout_total
from .network import Edge, LayerGeometry, NetworkSpec


@dataclass
class LayerCounts:
    """Events of one layer over the T model steps (all integers, measured)."""

    name: str
    neurons: int
    spikes: int = 0
    input_spikes: int = 0
    synops: int = 0
    input_macs: int = 0
    neuron_updates: int = 0
    spikes_per_step: list[int] = field(default_factory=list)
    synops_per_step: list[int] = field(default_factory=list)
    #: Graded events arriving (from multi-threshold layers) x the synapses each reaches: one multiply-accumulate
    #: each (weight x payload), never priced as a SynOp's add. `synops` counts binary spikes only.
    graded_synops: int = 0
    graded_synops_per_step: list[int] = field(default_factory=list)
    #: Sum of the payloads this layer emitted (= `spikes` for binary neurons, whose payload is 1).
    payload_sum: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def edge_fanout(spec: NetworkSpec, geo: Mapping[str, LayerGeometry], edge: Edge) -> np.ndarray:
    """Synapses each source position of a spiking edge reaches, per source channel (int64, the source's shape)."""
    return fanout_map(spec.layer(edge.dst), geo[edge.src].out_shape, geo[edge.dst].out_shape)


def events(outputs: Any) -> Any:
    """Which outputs of a step are events: binary spikes as they are, graded payloads where nonzero."""
    return outputs if outputs.dtype == bool or str(outputs.dtype) == "torch.bool" else outputs != 0


def step_synops(spikes_per_position: Any, fanout: Any) -> int:
    """SynOps of one step on one edge: spikes per source position (summed over channels) x exact fan-out.

    Takes numpy arrays or torch tensors of the source's spatial shape; integer sums are exact in both (torch and
    numpy sum integers into int64).
    """
    return int((spikes_per_position * fanout).sum())


def analog_macs_per_step(spec: NetworkSpec, geo: Mapping[str, LayerGeometry], edge: Edge) -> int:
    """Multiply-accumulates one step of the analog input costs on one edge: its real taps (padding has none)."""
    if edge.payload != "analog":
        raise SpikeRegError(f"edge {edge.src}->{edge.dst} carries {edge.payload} events, not the analog input")
    return edge.channels * fanout_total(spec.layer(edge.dst), geo[edge.src].out_shape, geo[edge.dst].out_shape)


def analog_input_macs(spec: NetworkSpec, geo: Mapping[str, LayerGeometry], edge: Edge) -> int:
    """MACs of the analog input on one edge per inference: T x its real taps, or once with input_mode "bias"
    (the synaptic sum is computed once on the host and held as the first layer's bias)."""
    steps = 1 if spec.input_mode == "bias" else spec.time_steps
    return analog_macs_per_step(spec, geo, edge) * steps


def neuron_updates(neurons: int, steps: int) -> int:
    """Compartment updates: every neuron (spiking or readout) updates once per step."""
    return neurons * steps


def projected_synops(spec: NetworkSpec, geo: Mapping[str, LayerGeometry], edge: Edge, rate: float,
                     steps: int) -> float:
    """SynOps a spiking edge would count if every source neuron spiked at `rate` per step (rate x exact fan-out)."""
    fan = fanout_total(spec.layer(edge.dst), geo[edge.src].out_shape, geo[edge.dst].out_shape)
    return rate * steps * edge.channels * fan
