"""Mapping outputs: placement metrics, the Loihi energy estimate, mapping.json and its Markdown/PNG views.

Every number carries its unit and how it was obtained: "planned" (the mapper's own output), "measured"
(counted in a simulation run), or "projected" (from measured per-layer rates or an assumed rate, through a
formula printed beside it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import atomic_file
from .errors import SpikeRegError, read_json_object
from .network import NetworkSpec
from .placement import BlockGraph, Placement
from .profiles import CoreProfile
from .tiling import RESOURCE_LABELS, RESOURCES, NetworkTiling, axis_reach

if TYPE_CHECKING:
    from .cli.map_cli import MappingPlan

MAPPING_FORMAT, MAPPING_VERSION = "spikereg-mapping", 1
BLOCK_COLUMNS = ("layer", "c0", "c1", "z0", "z1", "y0", "y1", "x0", "x1", "chip", "core", *RESOURCES)


# -- placement metrics ---------------------------------------------------------------------------------------
def evaluate(placement: Placement, graph: BlockGraph, profile: CoreProfile) -> dict[str, Any]:
    """Spike-hops, inter-chip spikes, hop statistics and the busiest link under dimension-order (X then Y)
    routing."""
    gr, gc = placement.router_coords(profile)
    s, d, w = graph.src, graph.dst, graph.spikes
    dr, dc = np.abs(gr[s] - gr[d]), np.abs(gc[s] - gc[d])
    cpos = placement.chip_pos[placement.chip]
    crossings = np.abs(cpos[s] - cpos[d]).sum(axis=1)
    hops = dr + dc
    total = float(w.sum())
    inter_chip = placement.chip[s] != placement.chip[d]
    busiest, busiest_chip_link = _busiest_links(link_loads(placement, graph, profile), profile)
    used = np.bincount(placement.chip, minlength=placement.n_chips)
    return {
        "spikes_per_step": total,
        "inter_core_spikes_per_step": float(w[inter_chip | (placement.slot[s] != placement.slot[d])].sum()),
        "inter_chip_spikes_per_step": float(w[inter_chip].sum()),
        "spike_hops_per_step": float((w * hops).sum()),
        "east_west_hops_per_step": float((w * dc).sum()),
        "north_south_hops_per_step": float((w * dr).sum()),
        "chip_link_crossings_per_step": float((w * crossings).sum()),
        "average_hops": float((w * hops).sum() / total) if total else 0.0,
        "worst_hops": int(hops[w > 0].max()) if (w > 0).any() else 0,
        "busiest_link": busiest,
        "busiest_chip_link": busiest_chip_link,
        "chips": int(placement.n_chips),
        "chip_grid": list(placement.chip_grid),
        "cores_used_per_chip_max": int(used.max()),
        "method": placement.method,
    }


def link_loads(placement: Placement, graph: BlockGraph, profile: CoreProfile) -> dict[str, np.ndarray]:
    """Spikes per step on every directed link of the global mesh under X-then-Y routing, via difference
    arrays (no per-hop loop). Link (r, c) of "east" joins router (r, c) to (r, c + 1), and so on."""
    gr, gc = placement.router_coords(profile)
    r0, c0, r1, c1, w = gr[graph.src], gc[graph.src], gr[graph.dst], gc[graph.dst], graph.spikes
    rows, cols = placement.chip_grid[0] * profile.mesh[0], placement.chip_grid[1] * profile.mesh[1]
    diff = {name: np.zeros((rows + 1, cols + 1)) for name in ("east", "west", "south", "north")}
    for name, mask, row, start, stop in (
        ("east", c1 > c0, r0, c0, c1),
        ("west", c1 < c0, r0, c1 + 1, c0 + 1),
        ("south", r1 > r0, c1, r0, r1),
        ("north", r1 < r0, c1, r1 + 1, r0 + 1),
    ):
        idx = (row[mask], start[mask]) if name in ("east", "west") else (start[mask], row[mask])
        end = (row[mask], stop[mask]) if name in ("east", "west") else (stop[mask], row[mask])
        np.add.at(diff[name], idx, w[mask])
        np.add.at(diff[name], end, -w[mask])
    return {
        name: np.cumsum(arr, axis=1 if name in ("east", "west") else 0)[:rows, :cols]
        for name, arr in diff.items()
    }


def _busiest_links(
    loads: dict[str, np.ndarray], profile: CoreProfile
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The most loaded link of all, and the most loaded one that joins two chips."""
    step = {"east": (0, 1), "west": (0, -1), "south": (1, 0), "north": (-1, 0)}
    best: dict[str, Any] | None = None
    best_chip: dict[str, Any] | None = None
    for name, acc in loads.items():
        dr_, dc_ = step[name]
        r_idx, c_idx = np.indices(acc.shape)
        crosses = ((r_idx + dr_) // profile.mesh[0] != r_idx // profile.mesh[0]) | (
            (c_idx + dc_) // profile.mesh[1] != c_idx // profile.mesh[1]
        )
        for flag, current in ((False, best), (True, best_chip)):
            masked = np.where(crosses, acc, -1.0) if flag else acc
            flat = int(np.argmax(masked))
            value = float(masked.ravel()[flat])
            if value <= 0 or (current is not None and value <= current["spikes_per_step"]):
                continue
            r, c = divmod(flat, acc.shape[1])
            entry = {
                "spikes_per_step": value,
                "direction": name,
                "from_router": [r, c],
                "to_router": [r + dr_, c + dc_],
                "chip": [r // profile.mesh[0], c // profile.mesh[1]],
                "crosses_chips": bool(crosses[r, c]),
            }
            if flag:
                best_chip = entry
            else:
                best = entry
    return best, best_chip


# -- energy --------------------------------------------------------------------------------------------------
def _fanout_total(spec: NetworkSpec, dst: str, geo: dict) -> int:
    """Synapses reached, summed over all source positions, for one source channel (exact, border/stride
    aware)."""
    layer, g = spec.layer(dst), geo[dst]
    total = layer.out_channels
    for a in range(3):
        lo, hi = axis_reach(layer, a, g.in_shape[a], g.out_shape[a])
        total *= int(np.maximum(hi - lo + 1, 0).sum())
    return total


def energy_estimate(plan: MappingPlan) -> dict[str, Any]:
    """Loihi energy per inference (T model steps) from the profile's per-op energies and the counts."""
    spec, rates, profile, m = plan.spec, plan.rates, plan.profile, plan.metrics
    t = rates.time_steps
    geo = spec.geometry(plan.input_shape)
    measured = rates.report is not None
    rows = {r["name"]: r for r in (rates.report or {}).get("layers", [])}  # empty when rates are assumed

    def how(key: str) -> str:  # "measured" only if the report gives this count for every layer
        ok = measured and all(key in rows.get(layer.name, {}) for layer in spec.layers[1:])
        return "measured" if ok else f"projected ({rates.source})"

    synops = graded = updates = active = 0.0
    for layer in spec.layers[1:]:
        neurons, row = geo[layer.name].neurons, rows.get(layer.name, {})
        updates += row.get("neuron_updates", neurons * t)
        # An update is "active" when the neuron spikes; non-spiking readout compartments integrate every step.
        active += row.get("spikes", rates.rates[layer.name] * neurons * t) if layer.spiking else neurons * t
        for src in layer.inputs:
            fan = _fanout_total(spec, layer.name, geo) * spec.channels_of(src)
            if spec.layer(src).kind == "input":
                graded += row.get("input_macs", fan * t)
            elif "synops" not in row:
                synops += rates.rates[src] * t * fan
        synops += row.get("synops", 0)
    counts = {
        "synaptic_ops": (
            synops,
            "events per inference",
            f"{how('synops')}: spikes x exact fan-out over T={t} steps",
        ),
        "input_graded_ops": (
            graded,
            "events per inference",
            f"{how('input_macs')}: analog input, every value every step, x exact fan-out (graded spikes)",
        ),
        "neuron_updates": (
            updates,
            "compartment updates per inference",
            f"{how('neuron_updates')}: neurons x T={t}",
        ),
        "active_neuron_updates": (
            active,
            "compartment updates per inference",
            f"{how('spikes')}: updates in which the neuron spikes (readout: every update)",
        ),
        "spike_packets": (
            m["spikes_per_step"] * t,
            "spikes x destination cores per inference",
            f"projected: per-layer rates ({rates.label}) x (source neuron, destination core) pairs",
        ),
        "router_hops_east_west": (
            m["east_west_hops_per_step"] * t,
            "packet-hops per inference",
            "projected: packets x east-west router hops of the planned placement (chip crossings included)",
        ),
        "router_hops_north_south": (
            m["north_south_hops_per_step"] * t,
            "packet-hops per inference",
            "projected: packets x north-south router hops of the planned placement (chip crossings included)",
        ),
        "chip_link_crossings": (
            m["chip_link_crossings_per_step"] * t,
            "packet-crossings per inference",
            "projected: packets x chip-to-chip links crossed",
        ),
        "host_input_packets": (
            plan.graph.host_inputs * t,
            "(input value, core) pairs per inference",
            "planned: the analog input sent from the host every step (not on the mesh)",
        ),
    }
    e = profile.energy_pj
    terms = [
        ("synaptic_ops", "synaptic_op_pj", counts["synaptic_ops"][0] + graded),
        ("neuron_updates_active", "neuron_update_active_pj", active),
        ("neuron_updates_inactive", "neuron_update_inactive_pj", max(updates - active, 0.0)),
        ("spikes_within_tile", "spike_within_tile_pj", counts["spike_packets"][0]),
        ("hops_east_west", "hop_east_west_pj", counts["router_hops_east_west"][0]),
        ("hops_north_south", "hop_north_south_pj", counts["router_hops_north_south"][0]),
        ("chip_links", "chip_hop_pj", counts["chip_link_crossings"][0]),
    ]
    energy = {}
    missing = []
    for name, key, count in terms:
        if key in e:
            energy[name] = {
                "pJ": count * e[key],
                "count": count,
                "pJ_per_op": e[key],
                "source": profile.sources.get(f"energy.{key}", ""),
            }
        else:
            missing.append(f"{name} ({key} not in profile {profile.name})")
    total = sum(v["pJ"] for v in energy.values())
    return {
        "time_steps": t,
        "counts": {k: {"value": v[0], "unit": v[1], "how": v[2]} for k, v in counts.items()},
        "energy": energy,
        "total_uJ": total * 1e-6,
        "label": "projected: per-op energies x counts (each count says whether it was measured)",
        "not_costed": missing + ["host input I/O", f"pipeline fill ({spec.pipeline_depth} extra steps)"],
    }


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
                "grid": list(lt.grid),
                "blocks": lt.n_blocks,
                "lower_bound": lt.lower_bound,
                "binding": lt.binding,
                "channel_bounds": lt.channel_bounds.tolist(),
                "z_bounds": lt.axis_bounds[0].tolist(),
                "y_bounds": lt.axis_bounds[1].tolist(),
                "x_bounds": lt.axis_bounds[2].tolist(),
                "layer_totals": dict(lt.layer_totals),
                "max_per_core": {r: int(lt.resources[r].max()) for r in RESOURCES},
            }
        )
    return {
        "format": MAPPING_FORMAT,
        "version": MAPPING_VERSION,
        "network": {"name": plan.spec.name, "fingerprint": plan.spec.fingerprint()},
        "input_shape": list(plan.input_shape),
        "time_steps": t,
        "profile": plan.profile.to_dict(),
        "traffic": {"label": plan.rates.label, "source": plan.rates.source, "rates": plan.rates.rates},
        "cores_used": tiling.n_blocks,
        "chips_used": placement.n_chips,
        "lower_bound_cores": tiling.lower_bound,
        "chip_grid": list(placement.chip_grid),
        "chip_positions": placement.chip_pos.tolist(),
        "spike_hops_per_inference": plan.metrics["spike_hops_per_step"] * t,
        "placement": plan.metrics,
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
            "cores_used / lower_bound_cores": "count (planned) / count (per-layer bound, summed)",
            "utilisation": "fraction of the profile's per-core limit (planned)",
            "*_per_step": "spikes (or spike-hops) per time step, projected from per-layer rates ("
            f"{plan.rates.label})",
            "spike_hops_per_inference": f"spike-hops over T={t} steps (projected)",
            "energy": "pJ or uJ per inference (projected; counts labelled measured/projected)",
            "timings_s": "seconds (measured)",
        },
    }


def write_mapping(path: str | Path, doc: dict[str, Any]) -> None:
    with atomic_file(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")


def read_mapping(path: str | Path) -> dict[str, Any]:
    """Read mapping.json back, checking its format and that every block row is complete."""
    doc = read_json_object(path, "mapping")
    if (
        doc.get("format") != MAPPING_FORMAT
        or doc.get("version") != MAPPING_VERSION
    ):
        raise SpikeRegError(f"not a {MAPPING_FORMAT} v{MAPPING_VERSION} file", path)
    if doc.get("block_columns") != list(BLOCK_COLUMNS) or any(
        len(r) != len(BLOCK_COLUMNS) for r in doc["blocks"]
    ):
        raise SpikeRegError("mapping block table is malformed", path)
    return doc


# -- Markdown and PNG ----------------------------------------------------------------------------------------
def _n(x: float) -> str:
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) < 1e15):
        return f"{int(x):,}"
    return f"{x:,.4g}" if abs(x) < 1e6 else f"{x:.4g}"


def render_markdown(doc: dict[str, Any]) -> str:
    p, n, e = doc["placement"], doc["naive_placement"], doc["energy"]
    prof = doc["profile"]
    shape = "x".join(map(str, doc["input_shape"]))
    net = doc["network"]
    lines = [
        f"# Mapping of {net['name']} ({net['fingerprint']}) at {shape} on {prof['name']}",
        "",
        f"- cores used: **{_n(doc['cores_used'])}** (planned); lower bound {_n(doc['lower_bound_cores'])} "
        f"(per-layer bound, summed); ratio {doc['cores_used'] / doc['lower_bound_cores']:.3f}",
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
        "| layer | grid (c x z x y x x) | cores | lower bound | binding limit |",
        "|---|---|---:|---:|---|",
    ]
    for lt in doc["layers"]:
        lines.append(
            f"| {lt['name']} | {' x '.join(map(str, lt['grid']))} | {_n(lt['blocks'])} | "
            f"{_n(lt['lower_bound'])} | {RESOURCE_LABELS[lt['binding']]} |"
        )
    lines += [
        "",
        f"## Energy per inference ({e['label']})",
        "",
        "| term | count | pJ per op | energy (uJ) |",
        "|---|---:|---:|---:|",
    ]
    for name, v in e["energy"].items():
        lines.append(f"| {name} | {_n(v['count'])} | {v['pJ_per_op']} | {v['pJ'] * 1e-6:.4g} |")
    lines += [f"| **total** | | | **{e['total_uJ']:.4g}** |", "", "Counts:", ""]
    lines += [f"- {k}: {_n(v['value'])} {v['unit']} ({v['how']})" for k, v in e["counts"].items()]
    lines += [
        "",
        "Not costed: " + "; ".join(e["not_costed"]) + ".",
        "",
        "Lower bound per layer: max(ceil(neurons/cap), ceil(in_axons/cap), ceil(out_axons/cap), "
        "ceil(synapse_bits/mem)); in_axons = source neurons with a synapse into the layer, out_axons = the "
        "layer's neurons with a synapse into each consumer layer (see spikereg_deploy/tiling.py).",
        "",
    ]
    return "\n".join(lines)


def render_png(
    doc: dict[str, Any],
    path: str | Path,
    profile_mesh: tuple[int, int],
    cores_per_router: int,
    usage: dict[str, np.ndarray],
) -> None:
    """Core map coloured by layer, and one map per resource of each core's utilisation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    blocks = np.asarray(doc["blocks"], dtype=np.int64)
    sub = math.ceil(math.sqrt(cores_per_router))
    gr, gc = doc["chip_grid"]
    rows, cols = gr * profile_mesh[0] * sub, gc * profile_mesh[1] * sub
    chip_pos = np.asarray(doc["chip_positions"], dtype=np.int64)
    router, within = np.divmod(blocks[:, 10], cores_per_router)
    r = (chip_pos[blocks[:, 9], 0] * profile_mesh[0] + router // profile_mesh[1]) * sub + within // sub
    c = (chip_pos[blocks[:, 9], 1] * profile_mesh[1] + router % profile_mesh[1]) * sub + within % sub
    fig, axes = plt.subplots(1, 5, figsize=(24, 5.5), constrained_layout=True)
    layer_map = np.full((rows, cols), np.nan)
    layer_map[r, c] = blocks[:, 0]
    names = [lt["name"] for lt in doc["layers"]]
    cmap = ListedColormap(plt.get_cmap("tab20").colors[: max(len(names), 1)])
    im = axes[0].imshow(layer_map, cmap=cmap, vmin=-0.5, vmax=len(names) - 0.5, interpolation="nearest")
    bar = fig.colorbar(im, ax=axes[0], ticks=range(len(names)), shrink=0.8)
    bar.ax.set_yticklabels(names)
    axes[0].set_title(f"{doc['cores_used']:,} cores on {doc['chips_used']:,} chips (by layer)")
    for ax, res in zip(axes[1:], RESOURCES, strict=True):
        grid = np.full((rows, cols), np.nan)
        grid[r, c] = usage[res]
        im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{RESOURCE_LABELS[res]}: fraction of limit")
        fig.colorbar(im, ax=ax, shrink=0.8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
        for k in range(1, gr):  # chip boundaries
            ax.axhline(k * profile_mesh[0] * sub - 0.5, color="0.3", lw=0.3)
        for k in range(1, gc):
            ax.axvline(k * profile_mesh[1] * sub - 0.5, color="0.3", lw=0.3)
    with atomic_file(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
