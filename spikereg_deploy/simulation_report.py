"""The simulation report's format (`report.json`, spikereg-simulation-report v1): built here, checked in
`report_schema.py`. Every engine's counts, and counts taken from the SLAYER model's spikes (evaluation), become the
same document, so every tool prices them the same way."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .counting import LayerCounts
from .network import NetworkSpec

REPORT_FORMAT = "spikereg-simulation-report"
REPORT_VERSION = 1

#: The label of `input_macs` for input_mode "bias": the first layer's sum is computed once and held as its bias.
BIAS_INPUT_MACS_UNIT = ("multiply-accumulates of the analog input's first-layer sum, once per inference on the host "
                        "(input_mode bias: loaded as the first layer's neuron bias), real taps only (measured)")

UNITS = {
    "neurons": "count (from the network description)",
    "spikes": "spikes (events: binary spikes, or graded spikes with a nonzero payload) emitted over the T model steps "
              "(measured)",
    "spike_rate": "spikes per neuron per time step (measured)",
    "input_spikes": "spikes arriving at the layer's synapses over T steps (measured)",
    "synops": "synaptic events: each arriving spike x the synapses it actually reaches, over T steps (measured)",
    "input_macs": "multiply-accumulates of the analog (non-spiking) input layer over T steps (measured, dense)",
    "graded_synops": "graded synaptic events: each arriving graded spike (nonzero payload) x the synapses it reaches, "
                     "over T steps; a weight x payload multiply-accumulate each (measured)",
    "payload_bits": "bits of the payload this layer's neurons send (1: binary spikes; from the network description)",
    "payload_sum": "sum of |payload| this layer sent over T steps (= spikes for binary neurons; measured)",
    "neuron_updates": "compartment updates over T steps: neurons x T (measured)",
    "input_mode": "how the analog input reaches the first layer: analog (a synapse every step) or bias (once)",
    "wall_time_s": "seconds (measured)",
    "displacement": "voxels",
}


def build_simulation_report(spec: NetworkSpec, counts: Mapping[str, LayerCounts], input_shape: tuple[int, ...],
                            time_steps: int, run_steps: int, engine: str, tag: str, wall_time_s: float,
                            displacement: np.ndarray | None, meta: dict[str, Any] | None = None, *,
                            output_spikes: np.ndarray | None = None) -> dict[str, Any]:
    """The JSON report: per-layer measured counts, totals, and what produced them (`engine`: lava, reference, or
    slayer for counts taken from the SLAYER model's spikes, which the engines reproduce spike for spike).
    A network that ends in spikes (plain NetX) gives `output_spikes` (bool, (C, D, H, W, T)) instead of a field;
    with neither (evaluation's counts) the report has no outcome block."""
    geo = spec.geometry(input_shape)
    t = time_steps
    layers = []
    for layer in spec.layers[1:]:
        c = counts[layer.name]
        layers.append({
            "name": layer.name, "kind": layer.kind, "inputs": list(layer.inputs),
            "neurons": c.neurons, "spiking": layer.spiking,
            "spikes": c.spikes, "spike_rate": c.spikes / (c.neurons * t) if layer.spiking else None,
            "input_spikes": c.input_spikes, "synops": c.synops, "input_macs": c.input_macs,
            "neuron_updates": c.neuron_updates, "fan_in": geo[layer.name].fan_in,
            "ann_macs_per_step": geo[layer.name].macs,
            "spikes_per_step": c.spikes_per_step, "synops_per_step": c.synops_per_step,
            "graded_synops": c.graded_synops, "graded_synops_per_step": c.graded_synops_per_step,
            "payload_bits": layer.neuron.payload_bits if layer.neuron is not None else None,
            "payload_sum": c.payload_sum if layer.spiking else 0,
        })
    spiking = [row for row in layers if row["spiking"]]
    total_neurons = sum(row["neurons"] for row in spiking)
    total_spikes = sum(row["spikes"] for row in spiking)
    totals = {
        "spiking_neurons": total_neurons,
        "spikes": total_spikes,
        "spike_rate": total_spikes / (total_neurons * t) if total_neurons else 0.0,
        "mean_layer_spike_rate": float(np.mean([row["spike_rate"] for row in spiking])) if spiking else 0.0,
        "synops": sum(row["synops"] for row in layers),
        "graded_synops": sum(row["graded_synops"] for row in layers),
        "input_macs": sum(row["input_macs"] for row in layers),
        "neuron_updates": sum(row["neuron_updates"] for row in layers),
    }
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "network": {"name": spec.name, "fingerprint": spec.architecture_fingerprint(),
                    "model_fingerprint": spec.model_fingerprint(), "input_mode": spec.input_mode},
        "input_shape": list(input_shape),
        "time_steps": t,
        "run_steps": run_steps,
        "pipeline_depth": spec.pipeline_depth,
        "engine": engine,
        "lava_tag": tag if engine == "lava" else None,
        "wall_time_s": round(wall_time_s, 4),
        "layers": layers,
        "totals": totals,
        **_outcome(spec, displacement, output_spikes, t),
        "units": UNITS if spec.input_mode == "analog" else {**UNITS, "input_macs": BIAS_INPUT_MACS_UNIT},
        **({"meta": meta} if meta else {}),
    }


def _outcome(spec: NetworkSpec, disp: np.ndarray | None, output_spikes: np.ndarray | None, t: int) -> dict[str, Any]:
    if disp is not None:
        return {"displacement": {"max_abs": float(np.abs(disp).max()),
                                 "mean_magnitude": float(np.sqrt((disp ** 2).sum(axis=0)).mean())}}
    if output_spikes is not None:  # a network that ends in spikes (plain NetX): its output is spikes, not a field
        events = output_spikes != 0  # graded outputs (signed for sigma-delta): events are the nonzero payloads
        return {"output_spikes": {"layer": spec.readout.name, "count": int(events.sum()),
                                  "per_neuron": events.reshape(-1, t).sum(axis=1).tolist()}}
    return {}
