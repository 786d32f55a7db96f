"""Placement metrics: spike-hops, inter-chip spikes and link loads under dimension-order (X then Y) routing."""

from __future__ import annotations

from typing import Any

import numpy as np

from .placement import Placement
from .profiles import CoreProfile
from .traffic import BlockGraph


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
