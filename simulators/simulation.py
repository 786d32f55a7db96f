"""One entry point for both engines (Lava CPU runtime, torch reference), their memory estimates and the report.

The report is the contract with the mapper and the energy stage: per-layer measured counts, with units and how each
number was obtained written beside it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spikereg_deploy.atomic import atomic_file
from spikereg_deploy.atomic import write_json as atomic_write_json
from spikereg_deploy.counting import LayerCounts
from spikereg_deploy.engine import IntegerNetwork, estimate_engine_memory
from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.limits import human_bytes, parse_memory  # noqa: F401  (sim.human_bytes, sim.parse_memory)
from spikereg_deploy.network import NetworkSpec

REPORT_FORMAT = "spikereg-simulation-report"
REPORT_VERSION = 1
ENGINES = ("lava", "reference")

#: Measured on this project's 2-core machine (see README): Lava's forked processes cost about 120 MB together, plus
#: The label of `input_macs` for input_mode "bias": the first layer's sum is computed once and held as its bias.
BIAS_INPUT_MACS_UNIT = ("multiply-accumulates of the analog input's first-layer sum, once per inference on the host "
                        "(input_mode bias: loaded as the first layer's neuron bias), real taps only (measured)")

#: roughly 350 bytes per neuron (states, channel buffers, spike and current messages) and the delay buffers.
LAVA_BASE_BYTES = 120 * 2**20
LAVA_BYTES_PER_NEURON = 350

UNITS = {
    "neurons": "count (from the network description)",
    "spikes": "spikes emitted over the T model steps (measured)",
    "spike_rate": "spikes per neuron per time step (measured)",
    "input_spikes": "spikes arriving at the layer's synapses over T steps (measured)",
    "synops": "synaptic events: each arriving spike x the synapses it actually reaches, over T steps (measured)",
    "input_macs": "multiply-accumulates of the analog (non-spiking) input layer over T steps (measured, dense)",
    "neuron_updates": "compartment updates over T steps: neurons x T (measured)",
    "input_mode": "how the analog input reaches the first layer: analog (a synapse every step) or bias (once)",
    "wall_time_s": "seconds (measured)",
    "displacement": "voxels",
}


@dataclass
class SimulationResult:
    displacement: np.ndarray | None  # None for a network that ends in spikes (plain NetX): see output_spikes
    counts: dict[str, LayerCounts]
    time_steps: int
    run_steps: int
    engine: str
    tag: str
    wall_time_s: float
    spikes: dict[str, list[np.ndarray]] | None = None
    output_spikes: np.ndarray | None = None  # without a readout: the last layer's spikes, bool (C, D, H, W, T)


def estimate_memory(spec: NetworkSpec, input_shape: tuple[int, int, int], engine: str) -> int:
    """Bytes a run needs at its peak (an estimate, calibrated at 16^3 and 32^3 on this machine)."""
    if engine == "reference":
        return 2 * estimate_engine_memory(spec, input_shape)
    geo = spec.geometry(input_shape)
    neurons = sum(g.neurons for g in geo.values())
    delay_buffers = sum(4 * (e.delay + 1) * geo[e.dst].neurons for e in spec.edges())
    return LAVA_BASE_BYTES + LAVA_BYTES_PER_NEURON * neurons + delay_buffers


def check_memory(spec: NetworkSpec, input_shape: tuple[int, int, int], engine: str, max_bytes: int) -> int:
    """The run's estimate in bytes, or a one-line error when it exceeds `max_bytes` (`--max-memory`); callers run
    it as soon as the network and the size are known, before the pair is built."""
    need = estimate_memory(spec, input_shape, engine)
    if need > max_bytes:
        raise SpikeRegError(f"estimated memory {human_bytes(need)} exceeds --max-memory {human_bytes(max_bytes)}; "
                            f"use a smaller --input-shape or --engine reference")
    return need


def simulate(spec: NetworkSpec, weights: dict[str, np.ndarray], image: np.ndarray, *, engine: str = "lava",
             tag: str = "fixed_pt", progress: bool = True, record_spikes: bool = False) -> SimulationResult:
    """Run one (C, D, H, W) image in [0, 1] through the network on the chosen engine."""
    if engine == "lava":
        from .lava_builder import run_lava

        run = run_lava(spec, weights, image, tag=tag, progress=progress, record_spikes=record_spikes)
        return SimulationResult(run.displacement, run.counts, run.time_steps, run.run_steps, "lava", tag,
                                run.wall_time_s, run.spikes, run.output_spikes)
    if engine == "reference":
        if tag != "fixed_pt":
            raise SpikeRegError("the reference engine computes Loihi integers only (tag fixed_pt)")
        started = time.perf_counter()
        ref = IntegerNetwork(spec, weights).run(image, record_spikes=record_spikes, progress=progress)
        wall = time.perf_counter() - started
        return SimulationResult(ref.displacement, ref.counts, ref.time_steps, ref.time_steps, "reference", tag,
                                wall, ref.spikes, ref.output_spikes)
    raise SpikeRegError(f"unknown engine {engine!r} (choose {' or '.join(ENGINES)})")


def build_report(result: SimulationResult, spec: NetworkSpec, input_shape: tuple[int, int, int],
                 meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON report: per-layer measured counts, totals, and what produced them."""
    geo = spec.geometry(input_shape)
    t = result.time_steps
    layers = []
    for layer in spec.layers[1:]:
        c = result.counts[layer.name]
        layers.append({
            "name": layer.name, "kind": layer.kind, "inputs": list(layer.inputs),
            "neurons": c.neurons, "spiking": layer.spiking,
            "spikes": c.spikes, "spike_rate": c.spikes / (c.neurons * t) if layer.spiking else None,
            "input_spikes": c.input_spikes, "synops": c.synops, "input_macs": c.input_macs,
            "neuron_updates": c.neuron_updates, "fan_in": geo[layer.name].fan_in,
            "ann_macs_per_step": geo[layer.name].macs,
            "spikes_per_step": c.spikes_per_step, "synops_per_step": c.synops_per_step,
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
        "input_macs": sum(row["input_macs"] for row in layers),
        "neuron_updates": sum(row["neuron_updates"] for row in layers),
    }
    disp = result.displacement
    if disp is None:  # a network that ends in spikes (plain NetX): its output is spikes, not a field
        assert result.output_spikes is not None
        outcome: dict[str, Any] = {"output_spikes": {"layer": spec.readout.name,
                                                     "count": int(result.output_spikes.sum()),
                                                     "per_neuron": result.output_spikes.reshape(
                                                         -1, t).sum(axis=1).tolist()}}
    else:
        outcome = {"displacement": {"max_abs": float(np.abs(disp).max()), "mean_magnitude": float(
            np.sqrt((disp ** 2).sum(axis=0)).mean())}}
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "network": {"name": spec.name, "fingerprint": spec.architecture_fingerprint(),
                    "model_fingerprint": spec.model_fingerprint(), "input_mode": spec.input_mode},
        "input_shape": list(input_shape),
        "time_steps": t,
        "run_steps": result.run_steps,
        "pipeline_depth": spec.pipeline_depth,
        "engine": result.engine,
        "lava_tag": result.tag if result.engine == "lava" else None,
        "wall_time_s": round(result.wall_time_s, 4),
        "layers": layers,
        "totals": totals,
        **outcome,
        "units": UNITS if spec.input_mode == "analog" else {**UNITS, "input_macs": BIAS_INPUT_MACS_UNIT},
        **({"meta": meta} if meta else {}),
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_json(path, data)  # the one JSON writer: no NaN / Infinity tokens


def plot_rates(report: dict[str, Any], path: Path) -> None:
    """Bar chart of measured spike rate per layer, with the mean rate marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in report["layers"] if row["spiking"]]
    names = [row["name"] for row in rows]
    rates = [100 * row["spike_rate"] for row in rows]
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(names)), 3.6))
    ax.bar(names, rates, color="#3a7bd5")
    ax.axhline(100 * report["totals"]["spike_rate"], color="#d53a3a", ls="--",
               label=f"all neurons: {100 * report['totals']['spike_rate']:.1f} %")
    ax.set_ylabel("spike rate, % per step (measured)")
    ax.set_title(f"{report['engine']} run, T={report['time_steps']}, input {'x'.join(map(str, report['input_shape']))}")
    ax.set_ylim(0, 1.3 * max([*rates, 100 * report["totals"]["spike_rate"], 0.1]))  # room for the legend
    ax.legend(loc="upper left")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    with atomic_file(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def format_table(report: dict[str, Any]) -> str:
    """Per-layer console table; units in the header."""
    head = (f"{'layer':<11}{'neurons':>10}{'spikes':>11}{'rate %':>8}{'in spikes':>11}{'SynOps':>14}"
            f"{'input MACs':>14}")
    lines = [f"measured over T={report['time_steps']} steps ({report['engine']}; counts are events, rate = spikes "
             f"per neuron per step)", head]
    for row in report["layers"]:
        rate = f"{100 * row['spike_rate']:.2f}" if row["spiking"] else "-"
        lines.append(f"{row['name']:<11}{row['neurons']:>10,}{row['spikes']:>11,}{rate:>8}{row['input_spikes']:>11,}"
                     f"{row['synops']:>14,}{row['input_macs']:>14,}")
    tot = report["totals"]
    lines.append(f"{'total':<11}{tot['spiking_neurons']:>10,}{tot['spikes']:>11,}{100 * tot['spike_rate']:>8.2f}"
                 f"{'':>11}{tot['synops']:>14,}{tot['input_macs']:>14,}")
    return "\n".join(lines)
