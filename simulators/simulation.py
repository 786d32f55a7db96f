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
from spikereg_deploy.simulation_report import (  # noqa: F401  (the format's names, as sim.REPORT_FORMAT etc.)
    BIAS_INPUT_MACS_UNIT,
    REPORT_FORMAT,
    REPORT_VERSION,
    UNITS,
    build_simulation_report,
)

ENGINES = ("lava", "reference")

#: Measured on this project's 2-core machine (see README): Lava's forked processes cost about 120 MB together, plus

#: roughly 350 bytes per neuron (states, channel buffers, spike and current messages) and the delay buffers.
LAVA_BASE_BYTES = 120 * 2**20
LAVA_BYTES_PER_NEURON = 350



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
    """The JSON report of one run (`spikereg_deploy.simulation_report`, the format's one place)."""
    return build_simulation_report(spec, result.counts, input_shape, result.time_steps, result.run_steps,
                                   result.engine, result.tag, result.wall_time_s, result.displacement, meta,
                                   output_spikes=result.output_spikes)


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
