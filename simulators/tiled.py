"""Whole volumes that do not fit a simulator's memory, run as overlapping slabs along one axis and stitched.

Why by hand: the tiling is this network's (slab borders on its downsampling grid, memory from `estimate_memory`);
no simulator library tiles a spiking U-Net. A slab is its core (the voxels it delivers) plus a halo of context on
each side (clipped at the volume's faces); the field is taken from each slab's core only. The network's receptive
field is wider than a practical halo, so voxels near a seam see zero padding where the whole run sees brain: a
tiled field equals the whole-volume field only away from the seams (the benchmark measures the difference). Each
slab is one ordinary run of `simulation.simulate`, so a tiled Lava run is bit-exact to a tiled reference run.

Counts are the events of all slabs as they were simulated: a halo voxel's neurons run (and count) once per slab
that holds them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from itertools import pairwise
from typing import Any

import numpy as np

from spikereg_deploy.counting import LayerCounts
from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.limits import human_bytes
from spikereg_deploy.network import NetworkSpec

from . import simulation as sim

#: Context on each side of a slab's core, in network-grid voxels (rounded up to the network's multiple): 32 mm at
#: 2 mm voxels, about the reach of the U-Net's two finest levels.
DEFAULT_HALO = 16


@dataclass(frozen=True)
class Slab:
    """Voxels [start, stop) of `axis` run together; [core_start, core_stop) of them are kept."""

    start: int
    stop: int
    core_start: int
    core_stop: int


@dataclass(frozen=True)
class TilePlan:
    axis: int
    halo: int
    slabs: tuple[Slab, ...]
    bytes_per_slab: int  # the largest slab's memory estimate (projected)

    def to_dict(self) -> dict[str, Any]:
        return {"axis": self.axis, "halo_voxels": self.halo, "tiles": len(self.slabs),
                "slabs": [[s.start, s.stop, s.core_start, s.core_stop] for s in self.slabs],
                "slabs_format": "[start, stop, core_start, core_stop] network-grid voxels along `axis`",
                "memory_per_tile_bytes": self.bytes_per_slab,
                "counts": "events of all tiles as simulated: halo voxels run (and count) once per tile holding them",
                "field": "each tile's core; near a seam it differs from a whole-volume run (the receptive field is "
                         "wider than the halo)"}


def plan_slabs(shape: tuple[int, int, int], tiles: int, multiple: int, halo: int = DEFAULT_HALO,
               axis: int | None = None) -> tuple[int, tuple[Slab, ...], int]:
    """`tiles` slabs along `axis` (default: the longest), borders on multiples of `multiple` so every slab keeps the
    whole run's pooling grid; returns (axis, slabs, halo actually used)."""
    axis = int(np.argmax(shape)) if axis is None else axis
    n = shape[axis]
    blocks = n // multiple
    if tiles < 1 or tiles > blocks:
        raise SpikeRegError(f"--tiles {tiles}: a {n}-voxel axis splits into 1 to {blocks} tiles of the network's "
                            f"multiple {multiple}")
    halo = multiple * math.ceil(halo / multiple)
    cuts = [multiple * round(i * blocks / tiles) for i in range(tiles + 1)]
    slabs = tuple(Slab(max(0, lo - halo), min(n, hi + halo), lo, hi) for lo, hi in pairwise(cuts))
    return axis, slabs, halo


def _slab_shape(shape: tuple[int, int, int], axis: int, slab: Slab) -> tuple[int, int, int]:
    out = list(shape)
    out[axis] = slab.stop - slab.start
    return out[0], out[1], out[2]


def plan_tiles(spec: NetworkSpec, shape: tuple[int, int, int], engine: str, max_bytes: int, tiles: int | str,
               halo: int = DEFAULT_HALO) -> TilePlan:
    """The plan for `tiles` slabs ("auto": the fewest whose largest slab fits `max_bytes`); a one-line error when
    the slabs do not fit."""
    multiple = spec.required_multiple()
    candidates = range(1, max(shape) // multiple + 1) if tiles == "auto" else (int(tiles),)
    need = 0
    for count in candidates:
        axis, slabs, used = plan_slabs(shape, count, multiple, halo)
        need = max(sim.estimate_memory(spec, _slab_shape(shape, axis, s), engine) for s in slabs)
        if need <= max_bytes:
            return TilePlan(axis, used if count > 1 else 0, slabs, need)
    raise SpikeRegError(f"estimated memory {human_bytes(need)} per tile ({len(slabs)} tiles of "
                        f"{'x'.join(map(str, shape))}) exceeds --max-memory {human_bytes(max_bytes)}"
                        + ("; use --tiles auto, more tiles or --engine reference" if tiles != "auto" else ""))


def _add_counts(total: dict[str, LayerCounts], part: dict[str, LayerCounts]) -> None:
    for name, counts in part.items():
        if name not in total:
            total[name] = LayerCounts(**{f.name: (list(getattr(counts, f.name)) if f.name.endswith("_per_step")
                                                  else getattr(counts, f.name)) for f in fields(LayerCounts)})
            continue
        into = total[name]
        for f in fields(LayerCounts):
            if f.name == "name":
                continue
            if f.name.endswith("_per_step"):
                mine, theirs = getattr(into, f.name), getattr(counts, f.name)
                size = max(len(mine), len(theirs))
                setattr(into, f.name, [(mine[t] if t < len(mine) else 0) + (theirs[t] if t < len(theirs) else 0)
                                       for t in range(size)])
            else:
                setattr(into, f.name, getattr(into, f.name) + getattr(counts, f.name))


def simulate_tiled(spec: NetworkSpec, weights: dict[str, np.ndarray], image: np.ndarray, plan: TilePlan, *,
                   engine: str = "lava", tag: str = "fixed_pt", progress: bool = True) -> sim.SimulationResult:
    """Run every slab of `plan` on `engine` and stitch the cores into one (3, D, H, W) field; counts summed."""
    if len(plan.slabs) == 1:
        return sim.simulate(spec, weights, image, engine=engine, tag=tag, progress=progress)
    from tqdm import tqdm

    field: np.ndarray | None = None
    counts: dict[str, LayerCounts] = {}
    wall, run_steps, time_steps = 0.0, 0, 0
    for slab in tqdm(plan.slabs, desc=f"{engine} tiles", unit="tile", disable=not progress):
        take = [slice(None)] * 4
        take[1 + plan.axis] = slice(slab.start, slab.stop)
        part = sim.simulate(spec, weights, np.ascontiguousarray(image[tuple(take)]), engine=engine, tag=tag,
                            progress=False)
        if part.displacement is None:
            raise SpikeRegError("tiles stitch a displacement field; this network has no readout")
        if field is None:
            field = np.zeros((part.displacement.shape[0], *image.shape[1:]), dtype=part.displacement.dtype)
        put, keep = [slice(None)] * 4, [slice(None)] * 4
        put[1 + plan.axis] = slice(slab.core_start, slab.core_stop)
        keep[1 + plan.axis] = slice(slab.core_start - slab.start, slab.core_stop - slab.start)
        field[tuple(put)] = part.displacement[tuple(keep)]
        _add_counts(counts, part.counts)
        wall += part.wall_time_s
        run_steps, time_steps = part.run_steps, part.time_steps
    return sim.SimulationResult(field, counts, time_steps, run_steps, engine, tag, wall)
