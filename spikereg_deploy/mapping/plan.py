"""One mapping run as library code: read the traffic, tile, build the block graph, place, evaluate, price.

`spikereg-map` and `spikereg-run` call these; the result (`MappingPlan`) is what the report modules render.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_files, json_text
from ..energy.loihi import describe_total
from ..energy.report import check_model_fingerprint, check_simulation_format, load_simulation_report
from ..errors import SpikeRegError
from ..network import NetworkSpec, as_triple
from .partition import DEFAULT_PARTITIONERS, PartitionChoice, place_best
from .placement import Placement, naive_placement
from .profiles import CoreProfile, load_profile
from .render import render_png
from .report import energy_estimate, mapping_document, render_markdown
from .routing import evaluate
from .tiling import NetworkTiling, tile_network
from .traffic import DEFAULT_RATE, BlockGraph, LayerRates, build_block_graph


@dataclass(eq=False)
class MappingPlan:
    """Everything one mapping run decided and measured, ready for the report."""

    spec: NetworkSpec
    input_shape: tuple[int, int, int]
    profile: CoreProfile
    tiling: NetworkTiling
    rates: LayerRates
    graph: BlockGraph
    placement: Placement
    naive: Placement
    metrics: dict[str, Any]
    naive_metrics: dict[str, Any]
    energy: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    partitioning: PartitionChoice | None = None

    def exceeds_largest_system(self) -> bool:
        """More chips than the largest system the profile lists (the plan is still written: a what-if)."""
        return bool(self.profile.max_chips and self.placement.n_chips > self.profile.max_chips)


def read_traffic_report(
    source: str | Path | dict[str, Any], spec: NetworkSpec, input_shape: tuple[int, int, int],
    described_as: str | None = None,
) -> LayerRates:
    """Per-layer spike rates from a `spikereg-simulate` report; one that is not of this network is refused.
    `described_as` names the report in messages and in the mapping (a staged file: the path it will have)."""
    where = described_as or ("<report>" if isinstance(source, dict) else str(source))
    if isinstance(source, dict):
        data = source
        check_simulation_format(data, where)
    else:
        data = load_simulation_report(source)
    check_model_fingerprint(data, spec, where)
    if list(data.get("input_shape") or []) != list(input_shape):
        raise SpikeRegError(
            f"report was measured at input {data.get('input_shape')}, the mapping is for {list(input_shape)}",
            where,
        )
    t = data.get("time_steps")
    if not isinstance(t, int) or isinstance(t, bool) or t <= 0:
        raise SpikeRegError(f"report time_steps must be a positive integer, got {t!r}", where)
    rows = data.get("layers")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise SpikeRegError("report 'layers' must be a list of objects", where)
    names = [r.get("name") for r in rows]
    expected = [layer.name for layer in spec.layers[1:]]
    if sorted(map(str, names)) != sorted(expected):
        raise SpikeRegError(f"report layers {names} do not match the network's {expected}", where)
    geo = spec.geometry(input_shape)
    rates: dict[str, float] = {}
    for row in rows:
        layer = spec.layer(row["name"])
        if row.get("neurons") != geo[layer.name].neurons:
            raise SpikeRegError(
                f"report counts {row.get('neurons')} neurons in layer {layer.name!r}, the network "
                f"has {geo[layer.name].neurons}",
                where,
            )
        if not layer.spiking:
            continue
        rate = row.get("spike_rate")
        if rate is None and isinstance(row.get("spikes"), int):
            rate = row["spikes"] / (geo[layer.name].neurons * t)
        if not isinstance(rate, int | float) or isinstance(rate, bool) or not (0 <= rate <= 1):
            raise SpikeRegError(f"layer {layer.name!r}: spike_rate must be in [0, 1], got {rate!r}", where)
        rates[layer.name] = float(rate)
    return LayerRates(rates, "measured", f"per-layer spike rates measured in {where}", t, data)


def plan_mapping(
    spec: NetworkSpec,
    input_shape: tuple[int, int, int] | list[int],
    profile: CoreProfile | str,
    traffic: str | Path | dict[str, Any] | None = None,
    assumed_rate: float = DEFAULT_RATE,
    seed: int = 0,
    progress: bool = False,
    partitioners: Sequence[str] = DEFAULT_PARTITIONERS,
    seeds: int = 1,
    traffic_described_as: str | None = None,
) -> MappingPlan:
    """Tile, build the traffic graph, place (and the naive baseline), evaluate, estimate energy.

    `partitioners` x `seeds` candidates are each placed; the one with the fewest spike-hops is kept (partition.py).
    """
    shape = as_triple(list(input_shape), "input shape")
    prof = profile if isinstance(profile, CoreProfile) else load_profile(profile)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    tiling = tile_network(spec, shape, prof)
    timings["tiling"] = time.perf_counter() - start
    if traffic is not None:
        rates = read_traffic_report(traffic, spec, shape, traffic_described_as)
    else:
        rates = LayerRates.assumed(tiling, assumed_rate)
    mark = time.perf_counter()
    graph = build_block_graph(tiling, rates)
    timings["block_graph"] = time.perf_counter() - mark
    mark = time.perf_counter()
    placement, choice = place_best(tiling, graph, prof, partitioners, seeds, seed, progress)
    timings["placement"] = time.perf_counter() - mark
    mark = time.perf_counter()
    naive = naive_placement(tiling.n_blocks, prof)
    metrics, naive_metrics = evaluate(placement, graph, prof), evaluate(naive, graph, prof)
    timings["evaluation"] = time.perf_counter() - mark
    plan = MappingPlan(spec, shape, prof, tiling, rates, graph, placement, naive, metrics, naive_metrics,
                       partitioning=choice)
    plan.energy = energy_estimate(plan)
    timings["total"] = time.perf_counter() - start
    plan.timings = {k: round(v, 3) for k, v in timings.items()}
    return plan


def write_outputs(plan: MappingPlan, output: str | Path) -> dict[str, Any]:
    """Write mapping.json, <stem>_report.md and <stem>_cores.png: all three, or none if anything fails."""
    out = Path(output)
    if out.is_dir():
        raise SpikeRegError("output is a folder; give the mapping .json file to write", out)
    doc = mapping_document(plan)
    markdown = render_markdown(doc)
    usage = {r: plan.tiling.resource(r) / lim for r, lim in plan.profile.limits().items()}
    md, png = out.with_name(f"{out.stem}_report.md"), out.with_name(f"{out.stem}_cores.png")
    with atomic_files((md, ".md"), (png, ".png"), (out, ".json")) as (md_tmp, png_tmp, json_tmp):
        md_tmp.write_text(markdown, encoding="utf-8")
        render_png(doc, png_tmp, plan.profile.mesh, plan.profile.cores_per_router, usage)
        json_tmp.write_text(json_text(doc, compact=True), encoding="utf-8")  # staged here, not a second stage
    return doc


def format_plan_summary(plan: MappingPlan) -> str:
    """Cores, chips, hop figures against the naive placement, and the one Loihi energy line."""
    m, n, tiling = plan.metrics, plan.naive_metrics, plan.tiling
    return "\n".join([
        f"cores {tiling.n_blocks:,} (planned), lower bound {tiling.lower_bound:,} at 100 % fill (ratio "
        f"{tiling.n_blocks / tiling.lower_bound:.3f}), {tiling.fill_lower_bound:,} at fill "
        f"{plan.profile.fill_factor:g} (ratio {tiling.n_blocks / tiling.fill_lower_bound:.3f}); chips "
        f"{plan.placement.n_chips:,}",
        f"spike-hops/step {m['spike_hops_per_step']:.4g} vs naive {n['spike_hops_per_step']:.4g} "
        f"({plan.rates.label} rates, projected); inter-chip spikes/step "
        f"{m['inter_chip_spikes_per_step']:.4g} vs {n['inter_chip_spikes_per_step']:.4g}",
        f"Loihi energy {describe_total(plan.energy)}; planned in {plan.timings['total']:.1f} s (measured)",
    ])
