"""Placement of blocks on chips and core meshes, given the block graph (`traffic.py`).

Chips and routers form one global 2-D mesh (chips
tiled side by side, as Loihi's mesh protocol extends across chips): a spike's hops are the Manhattan distance
between the two routers, and the chip-to-chip links it crosses are the chip-mesh distance. Placement: a
partitioner (`partition.py`) splits the blocks into chip-sized parts (cut = inter-chip traffic), parts go on the
chip mesh by their spatial
centre, then blocks on each chip's routers by a greedy placement refined with pairwise swaps. The naive
layer-order placement is kept beside it as the baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from ..errors import SpikeRegError
from .profiles import CoreProfile
from .tiling import NetworkTiling
from .traffic import BlockGraph

SWAP_ROUNDS = 12  # most of the gain comes early (64^3: 12 rounds give 90 % of what 40 give)
CHIP_SWAP_ROUNDS = 20
CHIP_BATCH = 64  # chips placed together in one batch of array operations
MAX_CHIP_SWAP = 2048  # chip-level swaps use a dense chips x chips matrix


@dataclass(eq=False)
class Placement:
    """Where every block sits: chip id and usable-core slot on it; chip ids sit at `chip_pos` on the chip
    grid."""

    chip: np.ndarray
    slot: np.ndarray
    chip_grid: tuple[int, int]
    chip_pos: np.ndarray  # (n_chips, 2) row, col on the chip grid
    method: str

    @property
    def n_chips(self) -> int:
        return len(self.chip_pos)

    def router_coords(self, profile: CoreProfile) -> tuple[np.ndarray, np.ndarray]:
        """Global (row, col) of every block's router on the mesh of all chips."""
        rows, cols = slot_coords(profile)
        pos = self.chip_pos[self.chip]
        return pos[:, 0] * profile.mesh[0] + rows[self.slot], pos[:, 1] * profile.mesh[1] + cols[self.slot]


def slot_coords(profile: CoreProfile) -> tuple[np.ndarray, np.ndarray]:
    """Router (row, col) of each usable core slot on one chip."""
    routers = np.arange(profile.usable_cores) // profile.cores_per_router
    return routers // profile.mesh[1], routers % profile.mesh[1]


def chip_grid_shape(n_chips: int, mesh: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """Grid of chips (rows, cols) holding n chips, most nearly square in routers (not in chips)."""
    rows = min(n_chips, max(1, int(round(math.sqrt(n_chips * mesh[1] / mesh[0])))))
    return rows, -(-n_chips // rows)


def bisection_order(points: np.ndarray, n: int, scale: np.ndarray | None = None) -> np.ndarray:
    """Indices of n of the points in recursive-coordinate-bisection order: split on the widest axis (after
    `scale`) into k // 2 and the rest, recursively. Two sets ordered this way pair up region by region."""
    scale = np.ones(points.shape[1]) if scale is None else scale
    out = np.zeros(n, dtype=np.int64)

    def split(group: np.ndarray, k: int, first: int) -> None:
        xy = points[group] * scale
        if k == 1:
            out[first] = group[np.argmin(np.abs(xy - xy.mean(axis=0)).sum(axis=1))]
            return
        k1 = k // 2
        axis = int(np.argmax(xy.max(axis=0) - xy.min(axis=0)))
        group = group[np.argsort(xy[:, axis], kind="stable")]
        cut = min(max(round(len(group) * k1 / k), k1), len(group) - (k - k1))
        split(group[:cut], k1, first)
        split(group[cut:], k - k1, first + k1)

    if n:
        split(np.arange(len(points)), n, 0)
    return out


def grid_order(grid: tuple[int, int], mesh: tuple[int, int], n: int) -> np.ndarray:
    """n chip-grid cells (row, col) in recursive-bisection order (distances in routers: a chip is mesh[0] x
    mesh[1])."""
    cells = np.stack(np.divmod(np.arange(grid[0] * grid[1]), grid[1]), axis=1)
    return cells[bisection_order(cells.astype(np.float64), n, np.array(mesh, dtype=np.float64))]


def chips_needed(n_blocks: int, profile: CoreProfile) -> int:
    return max(1, -(-n_blocks // profile.usable_cores))


def naive_placement(n_blocks: int, profile: CoreProfile) -> Placement:
    """Baseline: blocks in layer order fill core slots, chip after chip, chips in row-major order."""
    n_chips = chips_needed(n_blocks, profile)
    grid = chip_grid_shape(n_chips, profile.mesh)
    ids = np.arange(n_blocks)
    pos = np.stack(np.divmod(np.arange(n_chips), grid[1]), axis=1)
    return Placement(ids // profile.usable_cores, ids % profile.usable_cores, grid, pos, "naive layer order")


# -- chips ---------------------------------------------------------------------------------------------------
def symmetric_traffic(graph: BlockGraph, n: int, nodes_of: np.ndarray | None = None) -> sp.csr_matrix:
    src, dst = (graph.src, graph.dst) if nodes_of is None else (nodes_of[graph.src], nodes_of[graph.dst])
    a = sp.coo_matrix((graph.spikes, (src, dst)), shape=(n, n)).tocsr()
    a = (a + a.T).tocsr()
    a.setdiag(0)
    a.eliminate_zeros()
    return a


def repair_balance(parts: np.ndarray, adj: sp.csr_matrix, n_chips: int, cap: int) -> np.ndarray:
    """Move the least attached blocks of over-full chips to the chip with room they talk to most (METIS
    balances only to within a few per cent)."""
    counts = np.bincount(parts, minlength=n_chips)
    ids = np.arange(n_chips)
    for chip in np.nonzero(counts > cap)[0]:
        members = np.nonzero(parts == chip)[0]
        inside = np.asarray(adj[members][:, members].sum(axis=1)).ravel()
        for b in members[np.argsort(inside, kind="stable")][: counts[chip] - cap]:
            row = adj[b]
            pull = np.bincount(parts[row.indices], weights=row.data, minlength=n_chips)
            score = np.where(counts < cap, pull - 1e-9 * np.abs(ids - chip), -np.inf)
            target = int(np.argmax(score))
            parts[b] = target
            counts[chip] -= 1
            counts[target] += 1
    return parts


def _centres(tiling: NetworkTiling) -> np.ndarray:
    """Centre of every block in normalised input coordinates (0..1 per axis): layers line up spatially."""
    out = []
    for layer in tiling.layers:
        ranges = layer.block_ranges()[:, 2:].reshape(-1, 3, 2).astype(np.float64)
        out.append(ranges.mean(axis=2) / np.array(layer.out_shape, dtype=np.float64))
    return np.concatenate(out)


# -- swaps ---------------------------------------------------------------------------------------------------
def refine_swaps(
    w: np.ndarray, lin: np.ndarray, dist: np.ndarray, pos: np.ndarray, rounds: int = SWAP_ROUNDS
) -> np.ndarray:
    """Pairwise-swap descent on sum(w_ij * dist(p_i, p_j)) / 2 + sum(lin[i, p_i]), for a batch of independent
    problems at once (one per chip): w, lin (B, m, m), dist (m, m), pos (B, m) a permutation of slots per
    problem.

    Pad unused items with zero rows. All swap gains come from one batched matrix product per round; every item
    whose best partner also picks it swaps (such pairs are disjoint), and a problem whose cost did not fall
    keeps only its single best swap instead.
    """
    m = pos.shape[1]
    items = np.arange(m)
    pos = pos.copy()
    # Gains in float32 (half the memory traffic); costs are summed in float64 before any decision.
    w, lin, dist = w.astype(np.float32), lin.astype(np.float32), dist.astype(np.float32)
    current = _cost(w, lin, dist, pos)
    idx = np.arange(len(pos))  # problems still improving; the others drop out of the arrays
    wa, la = w, lin
    for _ in range(rounds):
        if len(idx) == 0:
            break
        pa, cur = pos[idx], current[idx]
        md = dist[pa[:, :, None], pa[:, None, :]]
        g = wa @ md
        lp = np.take_along_axis(la, np.broadcast_to(pa[:, None, :], la.shape), axis=2)  # la[b, i, pa[b, j]]
        r = np.diagonal(g, axis1=1, axis2=2) + np.diagonal(lp, axis1=1, axis2=2)
        # Gain of swapping a and b (their mutual distance is unchanged, hence the 2 w_ab d_ab term).
        delta = g + g.transpose(0, 2, 1) + lp + lp.transpose(0, 2, 1) - r[:, :, None] - r[:, None, :]
        delta += 2 * wa * md
        delta[:, items, items] = np.inf
        partner = np.argmin(delta, axis=2)
        gain = np.take_along_axis(delta, partner[:, :, None], axis=2)[:, :, 0]
        thresh = -1e-9 * np.maximum(np.abs(cur), 1.0)[:, None]
        mutual = (np.take_along_axis(partner, partner, axis=1) == items) & (items < partner) & (gain < thresh)
        trial = pa.copy()
        bi, ai = np.nonzero(mutual)
        trial[bi, ai], trial[bi, partner[bi, ai]] = pa[bi, partner[bi, ai]], pa[bi, ai]
        trial_cost = _cost(wa, la, dist, trial)
        worse = np.nonzero(trial_cost >= cur)[0]
        if len(worse):  # fall back to the single best swap
            fa = np.argmin(gain[worse], axis=1)
            fp = partner[worse, fa]
            trial[worse] = pa[worse]
            trial[worse, fa], trial[worse, fp] = pa[worse, fp], pa[worse, fa]
            trial_cost[worse] = _cost(wa[worse], la[worse], dist, trial[worse])
        improved = trial_cost < cur * (1 - 1e-6)
        pos[idx[improved]], current[idx[improved]] = trial[improved], trial_cost[improved]
        if not improved.all():
            idx, wa, la = idx[improved], wa[improved], la[improved]
    return pos


def _cost(w: np.ndarray, lin: np.ndarray, dist: np.ndarray, p: np.ndarray) -> np.ndarray:
    md = dist[p[:, :, None], p[:, None, :]]
    quad = (w * md).sum(axis=(1, 2), dtype=np.float64)
    return 0.5 * quad + np.take_along_axis(lin, p[:, :, None], axis=2).sum(axis=(1, 2), dtype=np.float64)


def greedy_place(w: np.ndarray, lin: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Batched greedy start (B problems, m items/slots each): the most connected item first, at the most
    central slot, then always the unplaced item most connected to the placed ones, where it adds the least
    cost."""
    b_count, m, _ = w.shape
    batch = np.arange(b_count)
    pos = np.full((b_count, m), m, dtype=np.int64)  # unplaced items sit on a dummy slot m
    blocked = np.zeros((b_count, m))
    pull = np.zeros((b_count, m))
    item = np.argmax(w.sum(axis=2), axis=1)
    cost = lin[batch, item] + dist.mean(axis=0) * 1e-9  # the first item goes to the most central slot
    for step in range(m):
        slot = np.argmin(cost + blocked, axis=1)
        pos[batch, item] = slot
        blocked[batch, slot] = np.inf
        pull += w[batch, item]
        pull[batch, item] = -np.inf
        if step + 1 == m:
            break
        item = np.argmax(pull, axis=1)
        # Cost of the next item at every slot: its traffic to each placed item times the distance to it.
        by_slot = np.zeros((b_count, m + 1))
        by_slot[batch[:, None], pos] = w[batch, item]
        cost = lin[batch, item] + by_slot[:, :m] @ dist
    return pos


def _slot_dist(profile: CoreProfile) -> np.ndarray:
    rows, cols = slot_coords(profile)
    return (np.abs(rows[:, None] - rows[None, :]) + np.abs(cols[:, None] - cols[None, :])).astype(np.float64)


def _place_chips(
    tiling: NetworkTiling, graph: BlockGraph, parts: np.ndarray, n_chips: int, profile: CoreProfile
) -> tuple[tuple[int, int], np.ndarray]:
    """Chip grid position of each part: parts ordered by recursive bisection of their spatial centres (3-D) go
    on grid cells ordered by recursive bisection of the grid (2-D), then swaps on the inter-chip traffic."""
    grid = chip_grid_shape(n_chips, profile.mesh)
    centres = _centres(tiling)
    sums = np.stack([np.bincount(parts, weights=centres[:, a], minlength=n_chips) for a in range(3)], axis=1)
    part_centres = sums / np.maximum(np.bincount(parts, minlength=n_chips), 1)[:, None]
    pos = np.zeros((n_chips, 2), dtype=np.int64)
    pos[bisection_order(part_centres, n_chips)] = grid_order(grid, profile.mesh, n_chips)
    if 1 < n_chips <= MAX_CHIP_SWAP:
        cells = np.stack(np.divmod(np.arange(grid[0] * grid[1]), grid[1]), axis=1)
        dist = (
            np.abs(cells[:, None, 0] - cells[None, :, 0]) * profile.mesh[0]
            + np.abs(cells[:, None, 1] - cells[None, :, 1]) * profile.mesh[1]
        ).astype(np.float64)
        m = len(cells)
        w = np.zeros((1, m, m))
        w[0, :n_chips, :n_chips] = symmetric_traffic(graph, n_chips, nodes_of=parts).toarray()
        start = pos[:, 0] * grid[1] + pos[:, 1]
        cell = np.concatenate([start, np.setdiff1d(np.arange(m), start)])[None]
        cell = refine_swaps(w, np.zeros_like(w), dist, cell, rounds=CHIP_SWAP_ROUNDS)[0, :n_chips]
        pos = np.stack(np.divmod(cell, grid[1]), axis=1)
    return grid, pos


def _chip_problems(
    graph: BlockGraph,
    profile: CoreProfile,
    parts: np.ndarray,
    local: np.ndarray,
    chips: np.ndarray,
    chip_pos: np.ndarray,
    intra: np.ndarray,
    e_chip: np.ndarray,
    half: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Traffic matrices w (B, m, m) between blocks of each chip in `chips`, and the pull lin (B, m, slots) of
    each block towards the chips it talks to (spikes x router distance from a slot to that chip's centre)."""
    m, first, b_count = profile.usable_cores, int(chips[0]), len(chips)
    lo, hi = np.searchsorted(e_chip[intra], [first, first + b_count])
    e = intra[lo:hi]
    key = ((parts[graph.src[e]] - first) * m + local[graph.src[e]]) * m + local[graph.dst[e]]
    w = np.bincount(key, weights=graph.spikes[e], minlength=b_count * m * m).reshape(b_count, m, m)
    w = w + w.transpose(0, 2, 1)
    lin = np.zeros((b_count * m, m))
    h_block, h_other, h_w = half
    lo, hi = np.searchsorted(parts[h_block], [first, first + b_count])
    if hi > lo:
        n_chips = len(chip_pos)
        key = ((parts[h_block[lo:hi]] - first) * m + local[h_block[lo:hi]]) * n_chips + h_other[lo:hi]
        uniq, inv = np.unique(key, return_inverse=True)
        wsum = np.bincount(inv, weights=h_w[lo:hi])
        row, other = uniq // n_chips, uniq % n_chips
        rows, cols = slot_coords(profile)
        own = chip_pos[first + row // m]
        centre = chip_pos[other] * np.array(profile.mesh) + (np.array(profile.mesh) - 1) / 2.0
        gr = own[:, :1] * profile.mesh[0] + rows[None, :]
        gc = own[:, 1:] * profile.mesh[1] + cols[None, :]
        pulls = wsum[:, None] * (np.abs(gr - centre[:, :1]) + np.abs(gc - centre[:, 1:]))
        lin += (
            sp.csr_matrix((np.ones(len(uniq)), (row, np.arange(len(uniq)))), shape=(b_count * m, len(uniq)))
            @ pulls
        )
    return w, lin.reshape(b_count, m, m)


def place_blocks(
    tiling: NetworkTiling, graph: BlockGraph, profile: CoreProfile, parts: np.ndarray, progress: bool = False
) -> Placement:
    """Given the chip of every block (`partition.py`): chip grid by spatial centre + swaps, then greedy + swaps on
    each chip's routers."""
    n = graph.n_blocks
    n_chips = chips_needed(n, profile)
    if len(parts) != n or (n and (parts.min() < 0 or parts.max() >= n_chips)):
        raise SpikeRegError(f"a partition must give each of the {n} blocks a chip in 0..{n_chips - 1}")
    grid, chip_pos = _place_chips(tiling, graph, parts, n_chips, profile)
    slot = np.zeros(n, dtype=np.int64)
    order = np.argsort(parts, kind="stable")
    bounds = np.searchsorted(parts[order], np.arange(n_chips + 1))
    local = np.empty(n, dtype=np.int64)
    local[order] = np.arange(n) - bounds[parts[order]]
    e_chip, cross = parts[graph.src], parts[graph.src] != parts[graph.dst]
    intra = np.nonzero(~cross)[0]
    intra = intra[np.argsort(e_chip[intra], kind="stable")]
    # Half-edges (block, other chip, spikes): a block talking to another chip is pulled to that chip's side.
    cx = np.nonzero(cross)[0]
    h_block = np.concatenate([graph.src[cx], graph.dst[cx]])
    h_other = np.concatenate([parts[graph.dst[cx]], parts[graph.src[cx]]])
    h_w = np.concatenate([graph.spikes[cx], graph.spikes[cx]])
    h_order = np.argsort(parts[h_block], kind="stable")
    h_block, h_other, h_w = h_block[h_order], h_other[h_order], h_w[h_order]
    batches = range(0, n_chips, CHIP_BATCH)
    dist = _slot_dist(profile)
    for first in tqdm(batches, desc="placing cores", unit="batch", disable=not progress, leave=False):
        chips = np.arange(first, min(first + CHIP_BATCH, n_chips))
        w, lin = _chip_problems(
            graph, profile, parts, local, chips, chip_pos, intra, e_chip, (h_block, h_other, h_w)
        )
        pos = refine_swaps(w, lin, dist, greedy_place(w, lin, dist), rounds=SWAP_ROUNDS)
        members = order[bounds[chips[0]] : bounds[chips[-1] + 1]]
        slot[members] = pos[parts[members] - first, local[members]]
    return Placement(parts, slot, grid, chip_pos, "given chips + greedy/swap cores")
