"""Mapping outputs: the counts the Loihi energy model prices, mapping.json and its Markdown view.

Every number carries its unit and how it was obtained: "planned" (the mapper's own output), "measured"
(counted in a simulation run), or "projected" (from measured per-layer rates or an assumed rate, through a
formula printed beside it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atomic import write_json
from ..counting import analog_input_macs, projected_synops
from ..energy.loihi import OperationCount, active_updates, counts_from_report, format_uj, loihi_energy
from ..errors import SpikeRegError, read_json_object
from ..report_schema import validate_mapping_document
from .tiling import RESOURCE_LABELS, RESOURCES, NetworkTiling

if TYPE_CHECKING:
    from .plan import MappingPlan

MAPPING_FORMAT, MAPPING_VERSION = "spikereg-mapping", 1
BLOCK_COLUMNS = ("layer", "c0", "c1", "z0", "z1", "y0", "y1", "x0", "x1", "chip", "core", *RESOURCES)


def operation_counts(plan: MappingPlan) -> dict[str, OperationCount]:
    """Counts the Loihi model prices for this plan: the simulation report's own counts when it has them all
    (the energy report uses the very same function), else projected from the plan's rates; packets and hops
    always come from the placement."""
    spec, rates, m = plan.spec, plan.rates, plan.metrics
    t = rates.time_steps
    report = rates.report
    keys = ("synops", "input_macs", "neuron_updates", "spikes")
    if report is not None and all(k in row for row in report.get("layers", []) for k in keys):
        counts = counts_from_report(report, spec)
    else:
        counts = _projected_counts(plan)
    counts.update({
        "spike_packets": OperationCount(m["spikes_per_step"] * t, "spikes x destination cores per inference",
                                        f"projected: per-layer rates ({rates.label}) x (source neuron, "
                                        "destination core) pairs"),
        "router_hops_east_west": OperationCount(m["east_west_hops_per_step"] * t, "packet-hops per inference",
                                                "projected: packets x east-west router hops of the planned "
                                                "placement (chip crossings included)"),
        "router_hops_north_south": OperationCount(m["north_south_hops_per_step"] * t, "packet-hops per inference",
                                                  "projected: packets x north-south router hops of the planned "
                                                  "placement (chip crossings included)"),
        "chip_link_crossings": OperationCount(m["chip_link_crossings_per_step"] * t, "packet-crossings per "
                                              "inference", "projected: packets x chip-to-chip links crossed"),
        "host_input_packets": _host_input(plan, t),
        "host_output_values": OperationCount(plan.graph.host_outputs * t, "readout values per inference",
                                             "planned: readout output traffic, the readout's values leaving the "
                                             "chip for the host every step (not on the mesh)"),
    })
    return counts


def _host_input(plan: MappingPlan, t: int) -> OperationCount:
    """Input traffic from the host: the analog input's values x destination cores at every step, or with input as
    bias one bias mantissa per input-fed neuron, loaded once per inference."""
    spec = plan.spec
    if spec.input_mode == "analog":
        return OperationCount(plan.graph.host_inputs * t, "(input value, core) pairs per inference",
                              "planned: host input injection, the analog input's values x destination cores, "
                              "sent from the host every step (not on the mesh)")
    geo = spec.geometry(plan.input_shape)
    loaded = sum(geo[edge.dst].neurons for edge in spec.edges() if edge.payload == "analog")
    return OperationCount(loaded, "bias values per inference", "planned: input as bias, one bias mantissa per "
                          "first-layer neuron loaded from the host once per inference (no per-step injection)")


def _projected_counts(plan: MappingPlan) -> dict[str, OperationCount]:
    """Compartment and synaptic counts from per-layer rates, taking whatever a partial report does give."""
    spec, rates = plan.spec, plan.rates
    t = rates.time_steps
    geo = spec.geometry(plan.input_shape)
    measured = rates.report is not None
    rows = {r["name"]: r for r in (rates.report or {}).get("layers", [])}  # empty when rates are assumed

    def how(key: str) -> str:  # "measured" only if the report gives this count for every layer
        ok = measured and all(key in rows.get(layer.name, {}) for layer in spec.layers[1:])
        return "measured" if ok else f"projected ({rates.source})"

    synops = graded = graded_spikes = updates = active = 0.0
    for layer in spec.layers[1:]:
        neurons, row = geo[layer.name].neurons, rows.get(layer.name, {})
        layer_updates = row.get("neuron_updates", neurons * t)
        updates += layer_updates
        spikes = row.get("spikes", rates.rates[layer.name] * neurons * t) if layer.spiking else 0
        active += active_updates(layer.spiking, spikes, layer_updates)
        for edge in spec.edges_into(layer.name):
            if edge.payload == "analog":
                graded += row.get("input_macs", analog_input_macs(spec, geo, edge))
            elif edge.payload == "graded" and "graded_synops" not in row:  # a graded event is a MAC, apart
                graded_spikes += projected_synops(spec, geo, edge, rates.rates[edge.src], t)
            elif edge.payload != "graded" and "synops" not in row:
                synops += projected_synops(spec, geo, edge, rates.rates[edge.src], t)
        synops += row.get("synops", 0)
        graded_spikes += row.get("graded_synops", 0)
    return {
        "synaptic_ops": OperationCount(synops, "events per inference",
                                       f"{how('synops')}: spikes x exact fan-out over T={t} steps"),
        "input_graded_ops": OperationCount(graded, "events per inference", f"{how('input_macs')}: " + (
            "analog input, every value every step, x its real taps (graded spikes)" if spec.input_mode == "analog"
            else "input as bias: the first layer's sum once per inference on the host (real taps), loaded as its "
                 "neurons' bias (host -> chip once), no per-step input traffic")),
        "graded_synaptic_ops": OperationCount(graded_spikes, "events per inference", f"{how('graded_synops')}: "
                                              f"graded spikes x exact fan-out over T={t} steps (weight x payload)"),
        "neuron_updates": OperationCount(updates, "compartment updates per inference",
                                         f"{how('neuron_updates')}: neurons x T={t}"),
        "active_neuron_updates": OperationCount(active, "compartment updates per inference", f"{how('spikes')}: "
                                                "updates in which the neuron spikes (readout: every update)"),
    }


def energy_estimate(plan: MappingPlan) -> dict[str, Any]:
    """Loihi energy per inference (T model steps): the one Loihi per-op model over this plan's counts."""
    return loihi_energy(operation_counts(plan), plan.profile, plan.rates.time_steps, plan.spec.pipeline_depth)


# -- mapping.json --------------------------------------------------------------------------------------------
def _utilisation(tiling: NetworkTiling) -> dict[str, dict[str, float]]:
    limits = tiling.profile.limits()
    out = {}
    for r in RESOURCES:
        frac = tiling.resource(r) / limits[r]
        out[r] = {
            "mean": float(frac.mean()),
            "min": float(frac.min()),
            "max": float(frac.max()),
            "limit": limits[r],
        }
    return out


def mapping_document(plan: MappingPlan) -> dict[str, Any]:
    """The mapping as one JSON-ready dict: every block's layer, channel and z/y/x ranges, chip and core."""
    tiling, placement = plan.tiling, plan.placement
    ranges = np.concatenate([t.block_ranges() for t in tiling.layers])
    used = [tiling.resource(r) for r in RESOURCES]
    table = np.column_stack([tiling.block_layer(), ranges, placement.chip, placement.slot, *used])
    t = plan.rates.time_steps
    layers = []
    for lt in tiling.layers:
        layers.append(
            {
                "name": lt.name,
                "kind": lt.kind,
                "out_shape": list(lt.out_shape),
                "channels": lt.channels,
                "blocks": lt.n_blocks,
                "lower_bound": lt.lower_bound,
                "fill_lower_bound": lt.fill_lower_bound,
                "binding": lt.binding,
                "segments": [seg.to_dict() for seg in lt.segments],
                "layer_totals": dict(lt.layer_totals),
                "max_per_core": {r: int(lt.resources[r].max()) for r in RESOURCES},
            }
        )
    return {
        "format": MAPPING_FORMAT,
        "version": MAPPING_VERSION,
        "network": {"name": plan.spec.name, "fingerprint": plan.spec.architecture_fingerprint()},
        "input_shape": list(plan.input_shape),
        "time_steps": t,
        "profile": plan.profile.to_dict(),
        "traffic": {"label": plan.rates.label, "source": plan.rates.source, "rates": plan.rates.rates},
        "cores_used": tiling.n_blocks,
        "chips_used": placement.n_chips,
        "lower_bound_cores": tiling.lower_bound,
        "fill_lower_bound_cores": tiling.fill_lower_bound,
        "lower_bound_fill": {"full": 1.0, "fill_factor": plan.profile.fill_factor},
        "cores_per_lower_bound": tiling.n_blocks / tiling.lower_bound,
        "cores_per_fill_lower_bound": tiling.n_blocks / tiling.fill_lower_bound,
        "host_io_per_step": {
            "input_injection": plan.graph.host_inputs if plan.spec.input_mode == "analog" else 0,
            "readout_output": plan.graph.host_outputs,
        },
        "chip_grid": list(placement.chip_grid),
        "chip_positions": placement.chip_pos.tolist(),
        "spike_hops_per_inference": plan.metrics["spike_hops_per_step"] * t,
        "placement": plan.metrics,
        "partitioning": plan.partitioning.to_dict() if plan.partitioning else None,
        "naive_placement": plan.naive_metrics,
        "utilisation": _utilisation(tiling),
        "energy": plan.energy,
        "layers": layers,
        "block_columns": list(BLOCK_COLUMNS),
        "blocks": table.astype(np.int64).tolist(),
        "timings_s": plan.timings,
        "units": {
            "blocks": "one row per core: layer index (into 'layers'), channel range [c0, c1), z/y/x ranges "
            "[lo, hi) of the layer's output, chip id and core slot (usable cores fill the chip mesh "
            "row-major, cores_per_router per router), then what the core uses of each resource (planned)",
            "cores_used / lower_bound_cores": "count (planned) / count (per-layer bound, summed, neurons at 100 % "
            "fill)",
            "fill_lower_bound_cores": "count (per-layer bound, summed, neurons at the profile's fill_factor)",
            "host_io_per_step": "input_injection: (analog input value, destination core) pairs per step; "
            "readout_output: readout values leaving the chip per step (planned, off-mesh, not costed)",
            "utilisation": "fraction of the profile's per-core limit (planned)",
            "*_per_step": "spikes (or spike-hops) per time step, projected from per-layer rates ("
            f"{plan.rates.label})",
            "spike_hops_per_inference": f"spike-hops over T={t} steps (projected)",
            "energy": "pJ or uJ per inference (projected; counts labelled measured/projected)",
            "timings_s": "seconds (measured)",
        },
    }


def write_mapping(path: str | Path, doc: dict[str, Any]) -> None:
    write_json(path, doc, compact=True)


def read_mapping(path: str | Path) -> dict[str, Any]:
    """Read mapping.json back, checking its format and that every block row is complete."""
    doc = read_json_object(path, "mapping")
    if (
        doc.get("format") != MAPPING_FORMAT
        or doc.get("version") != MAPPING_VERSION
    ):
        raise SpikeRegError(f"not a {MAPPING_FORMAT} v{MAPPING_VERSION} file", path)
    if doc.get("block_columns") != list(BLOCK_COLUMNS):
        raise SpikeRegError("mapping block table is malformed", path)
    validate_mapping_document(doc, path, len(BLOCK_COLUMNS))
    return doc


# -- Markdown and PNG ----------------------------------------------------------------------------------------
def _n(x: float) -> str:
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) < 1e15):
        return f"{int(x):,}"
    return f"{x:,.4g}" if abs(x) < 1e6 else f"{x:.4g}"


def _partitioning_line(part: dict[str, Any] | None) -> str:
    if not part:
        return "Chips partitioned by: not recorded."
    tried = ", ".join(f"{c['partitioner']} seed {c['seed']}: {_n(c['spike_hops_per_step'])}"
                      for c in part["candidates"]) or "none"
    notes = "".join(f" Note: {n}." for n in part["notes"])
    return (f"Chips partitioned by **{part['chosen']}** (seed {part['seed']}), the fewest placed spike-hops/step "
            f"among: {tried}.{notes}")


def render_markdown(doc: dict[str, Any]) -> str:
    p, n, e = doc["placement"], doc["naive_placement"], doc["energy"]
    prof = doc["profile"]
    shape = "x".join(map(str, doc["input_shape"]))
    net = doc["network"]
    lines = [
        f"# Mapping of {net['name']} ({net['fingerprint']}) at {shape} on {prof['name']}",
        "",
        f"- cores used: **{_n(doc['cores_used'])}** (planned); lower bound {_n(doc['lower_bound_cores'])} at "
        f"100 % fill (ratio {doc['cores_used'] / doc['lower_bound_cores']:.3f}), "
        f"{_n(doc['fill_lower_bound_cores'])} at the fill target {prof['fill_factor']:.3f} "
        f"(ratio {doc['cores_used'] / doc['fill_lower_bound_cores']:.3f}); per-layer bounds, summed; axon model "
        f"{prof['axon_model']}",
        f"- host I/O per step (planned, off-mesh): input injection {_n(doc['host_io_per_step']['input_injection'])}"
        f" (input value, core) pairs; readout output {_n(doc['host_io_per_step']['readout_output'])} values",
        f"- chips used: **{_n(doc['chips_used'])}** (planned; {prof['usable_cores']} usable cores each, "
        f"chip grid {doc['chip_grid'][0]} x {doc['chip_grid'][1]})"
        + (
            f"; the largest system listed in the profile has {prof['max_chips']:,} chips"
            if prof.get("max_chips")
            else ""
        ),
        f"- traffic: {doc['traffic']['source']} ({doc['traffic']['label']}); T = {doc['time_steps']} steps",
        "",
        "## Placement (spikes per time step, projected)",
        "",
        _partitioning_line(doc.get("partitioning")),
        "",
        "| quantity | unit | this placement | naive layer order |",
        "|---|---|---:|---:|",
    ]
    rows = [
        ("spikes sent (neuron, core pairs)", "spikes/step", "spikes_per_step"),
        ("inter-core spikes", "spikes/step", "inter_core_spikes_per_step"),
        ("inter-chip spikes", "spikes/step", "inter_chip_spikes_per_step"),
        ("spike-hops", "spike-hops/step", "spike_hops_per_step"),
        ("chip-link crossings", "crossings/step", "chip_link_crossings_per_step"),
        ("average hops", "router hops per spike", "average_hops"),
        ("worst hops", "router hops", "worst_hops"),
    ]
    lines += [f"| {label} | {unit} | {_n(p[k])} | {_n(n[k])} |" for label, unit, k in rows]
    for key, label in (("busiest_link", "busiest link"), ("busiest_chip_link", "busiest chip-to-chip link")):
        link = p.get(key)
        if link:
            lines.append(
                f"\n{label}: {_n(link['spikes_per_step'])} spikes/step (projected), {link['direction']} "
                f"from router {link['from_router']} (chip grid cell {link['chip']})"
            )
    lines += [
        "",
        "## Per-core utilisation (fraction of the profile limit, planned)",
        "",
        "| resource | limit per core | mean | min | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for r, u in doc["utilisation"].items():
        lines.append(
            f"| {RESOURCE_LABELS[r]} | {_n(u['limit'])} | {u['mean']:.3f} | {u['min']:.3f} | {u['max']:.3f} |"
        )
    lines += [
        f"\nNeuron fill target: {prof['fill_factor']:.3f} of {prof['neurons']:,} compartments.",
        "",
        "## Layers (planned)",
        "",
        "| layer | grid (c x z x y x x, + per further segment) | cores | lower bound (100 % fill) | "
        "lower bound (fill target) | binding limit |",
        "|---|---|---:|---:|---:|---|",
    ]
    for lt in doc["layers"]:
        lines.append(
            f"| {lt['name']} | {' + '.join(' x '.join(map(str, seg['grid'])) for seg in lt['segments'])} | "
            f"{_n(lt['blocks'])} | "
            f"{_n(lt['lower_bound'])} | {_n(lt['fill_lower_bound'])} | {RESOURCE_LABELS[lt['binding']]} |"
        )
    lines += [
        "",
        f"## Energy per inference (cost model {e['cost_model']}, profile {e['profile']}; {e['label']})",
        "",
        "| term | count | pJ per op | energy (uJ) |",
        "|---|---:|---:|---:|",
    ]
    for name, v in e["energy"].items():
        lines.append(f"| {name} | {_n(v['count'])} | {v['pJ_per_op']} | {format_uj(v['pJ'] * 1e-6)} |")
    lines += [f"| **total** | | | **{format_uj(e['total_uJ'])}** |", "", "Counts:", ""]
    lines += [f"- {k}: {_n(v['value'])} {v['unit']} ({v['how']})" for k, v in e["counts"].items()]
    lines += [
        "",
        "Not costed: " + "; ".join(e["not_costed"]) + ".",
        "",
        "Lower bound per layer: max(ceil(neurons/cap), ceil(in_axons/cap), ceil(out_axons/cap), "
        "ceil(synapse_bits/mem)), cap = all compartments (100 % fill) or the fill target; in_axons / out_axons "
        f"counted as the {prof['axon_model']} axon model does (see spikereg_deploy/mapping/tiling.py).",
        "",
    ]
    return "\n".join(lines)
