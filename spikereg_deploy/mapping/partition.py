"""Chip partitioners behind one interface, and the choice among them by placed spike-hops.

A smaller cut does not always mean fewer spike-hops once the parts are placed (issue 20: at full size a 5.7 %
smaller cut gave 2.8 % more hops), so every candidate (partitioner x seed) is placed in full and the plan keeps
the one with the fewest spike-hops; ties go to the earlier candidate, so the choice is deterministic.

- `metis`: pymetis with its defaults (the mapper's original partition: k-way above 8 parts).
- `metis_rb`: pymetis recursive bisection.
- `metis_tuned`: k-way with the balance slack the chip capacity allows (ufactor), 4 cuts kept best of, 20
  refinement iterations.
- `mtkahypar` (optional): mt-KaHyPar's DETERMINISTIC preset on one thread with a fixed seed; its default
  presets are not deterministic even on one thread, which is why this one is used.
- `kahip` (optional): KaHIP kaffpa in ECO mode (STRONG took 2,160 s at full size).
- `auto` (the default): every one of the above that is installed for graphs of up to `AUTO_ALL_BLOCKS` blocks
  (64^3: 4,584 blocks, about 12 s for all five); above that only `metis_rb`, the best of all five at 64^3 and at
  the full 160x192x224 volume (benchmarks/bench_mapper.py) and the only one whose placement fits a full-size plan
  in 60 s (one candidate there: about 6 s METIS + 20 s placing cores; mt-KaHyPar alone took 194 s, KaHIP 516 s).
  The rule depends on the block count only, so the same graph always gets the same candidates.
Optional packages (`pip install 'spikereg-deploy[partitioners]'`) that are missing are skipped with a note.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import SpikeRegError
from .placement import Placement, chips_needed, place_blocks, repair_balance, symmetric_traffic
from .profiles import CoreProfile
from .routing import evaluate
from .tiling import NetworkTiling
from .traffic import BlockGraph

PARTITIONERS = ("auto", "metis", "metis_rb", "metis_tuned", "mtkahypar", "kahip")
OPTIONAL = {"mtkahypar": "mtkahypar", "kahip": "kahip"}
DEFAULT_PARTITIONERS = ("auto",)
AUTO_ALL_BLOCKS = 16_000  # all five cost about 2.5 ms per block together: 40 s here, within a 60 s plan
AUTO_SMALL = ("metis", "metis_rb", "metis_tuned", "mtkahypar", "kahip")
AUTO_LARGE = ("metis_rb",)
KAHIP_ECO = 1
#: Least imbalance asked of KaHIP and mt-KaHyPar: METIS's default (ufactor 30). Chips nearly full leave almost no
# slack, and a partitioner held to it cuts worse; `repair_balance` then moves the few blocks above capacity.
EPSILON_FLOOR = 0.03


@dataclass(frozen=True)
class PartitionProblem:
    """The symmetric block-to-block traffic graph with integer edge weights and the chip capacity."""

    adj: sp.csr_matrix
    weights: np.ndarray  # int32 edge weights aligned with adj.data
    n_parts: int
    cap: int

    @property
    def slack(self) -> float:
        """Imbalance the capacity allows: a part may hold cap blocks, the average is n / parts."""
        return max(self.cap * self.n_parts / self.adj.shape[0] - 1.0, 0.0)


@dataclass
class PartitionChoice:
    """Every candidate tried (name, seed, inter-chip spikes, spike-hops, seconds), the one kept, and notes."""

    chosen: str
    seed: int
    candidates: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"chosen": self.chosen, "seed": self.seed, "candidates": self.candidates, "notes": self.notes,
                "rule": "fewest placed spike-hops per step; ties to the earlier candidate"}


def build_problem(graph: BlockGraph, profile: CoreProfile) -> PartitionProblem:
    adj = symmetric_traffic(graph, graph.n_blocks)
    # METIS takes 32-bit integer weights (an int64 array is misread): scale so their sum stays below 2^31.
    weights = adj.data / max(adj.data.max(initial=0.0), 1e-12) * 1e6
    scale = min(1.0, 1.5e9 / max(weights.sum(), 1.0))
    eweights = np.maximum(1, np.rint(weights * scale)).astype(np.int32)
    return PartitionProblem(adj, eweights, chips_needed(graph.n_blocks, profile), profile.usable_cores)


def _metis(problem: PartitionProblem, seed: int, recursive: bool | None = None, tuned: bool = False) -> np.ndarray:
    """pymetis; `recursive=None` is its own default (recursive bisection up to 8 parts, k-way above)."""
    import pymetis

    opts = pymetis.Options()
    opts.seed = seed
    if tuned:
        opts.ufactor = max(1, int(problem.slack * 1000))
        opts.ncuts = 4
        opts.niter = 20
    result = pymetis.part_graph(
        problem.n_parts, pymetis.CSRAdjacency(problem.adj.indptr, problem.adj.indices),
        eweights=problem.weights, options=opts, recursive=recursive,
    )
    return np.asarray(result.vertex_part, dtype=np.int64)


_MTKAHYPAR: list[Any] = []  # the one initializer (mt-KaHyPar may be initialised once per process)


def _mtkahypar(problem: PartitionProblem, seed: int) -> np.ndarray:
    import mtkahypar

    if not _MTKAHYPAR:
        _MTKAHYPAR.append(mtkahypar.initialize(1, False))
    init = _MTKAHYPAR[0]
    mtkahypar.set_seed(seed)
    context = init.context_from_preset(mtkahypar.PresetType.DETERMINISTIC)
    context.set_partitioning_parameters(problem.n_parts, max(problem.slack, EPSILON_FLOOR),
                                        mtkahypar.Objective.CUT)
    context.logging = False
    upper = sp.triu(problem.adj, k=1).tocoo()
    weight_of = sp.csr_matrix((problem.weights, problem.adj.indices, problem.adj.indptr), shape=problem.adj.shape)
    edge_w = np.asarray(weight_of[upper.row, upper.col]).ravel()
    edges = list(zip(upper.row.tolist(), upper.col.tolist(), strict=True))
    g = init.create_graph(context, problem.adj.shape[0], len(edges), edges, [1] * problem.adj.shape[0],
                          edge_w.astype(int).tolist())
    return np.asarray(g.partition(context).get_partition(), dtype=np.int64)


def _kahip(problem: PartitionProblem, seed: int) -> np.ndarray:
    import kahip

    n = problem.adj.shape[0]
    epsilon = max(problem.slack, EPSILON_FLOOR)
    _, blocks = kahip.kaffpa([1] * n, problem.adj.indptr.tolist(), problem.weights.astype(int).tolist(),
                             problem.adj.indices.tolist(), problem.n_parts, epsilon, True, seed, KAHIP_ECO)
    return np.asarray(blocks, dtype=np.int64)


RUNNERS: dict[str, Callable[[PartitionProblem, int], np.ndarray]] = {
    "metis": _metis,
    "metis_rb": lambda p, s: _metis(p, s, recursive=True),
    "metis_tuned": lambda p, s: _metis(p, s, recursive=False, tuned=True),
    "mtkahypar": _mtkahypar,
    "kahip": _kahip,
}


def available(name: str) -> bool:
    """Whether an optional partitioner's package imports here (the pymetis ones are required)."""
    if name not in OPTIONAL:
        return True
    try:
        __import__(OPTIONAL[name])
    except ImportError:
        return False
    return True


def place_best(
    tiling: NetworkTiling, graph: BlockGraph, profile: CoreProfile, partitioners: Sequence[str] = DEFAULT_PARTITIONERS,
    seeds: int = 1, seed: int = 0, progress: bool = False,
) -> tuple[Placement, PartitionChoice]:
    """Place with every available partitioner x `seeds` seeds (seed, seed + 1, ...); keep the fewest spike-hops."""
    unknown = [p for p in partitioners if p not in PARTITIONERS]
    if unknown or not partitioners:
        raise SpikeRegError(f"unknown partitioner {', '.join(unknown) or '(none given)'}: choose from "
                            f"{', '.join(PARTITIONERS)}")
    if seeds < 1:
        raise SpikeRegError(f"seeds must be at least 1, got {seeds}")
    notes = []
    if "auto" in partitioners:
        auto = AUTO_SMALL if graph.n_blocks <= AUTO_ALL_BLOCKS else AUTO_LARGE
        notes.append(f"auto: {', '.join(auto)} ({graph.n_blocks:,} blocks "
                     f"{'<=' if graph.n_blocks <= AUTO_ALL_BLOCKS else '>'} {AUTO_ALL_BLOCKS:,})")
        partitioners = [q for p in partitioners for q in (auto if p == "auto" else [p])]
    notes += [f"{p} not installed (pip install 'spikereg-deploy[partitioners]'): skipped"
              for p in dict.fromkeys(partitioners) if not available(p)]
    names = [p for p in dict.fromkeys(partitioners) if available(p)]
    if not names:
        names = ["metis"]
        notes.append("no requested partitioner available: fell back to metis")
    if chips_needed(graph.n_blocks, profile) == 1:
        placement = place_blocks(tiling, graph, profile, np.zeros(graph.n_blocks, dtype=np.int64), progress)
        return placement, PartitionChoice("single chip", seed, [], notes + ["one chip: nothing to partition"])
    problem = build_problem(graph, profile)
    best: tuple[float, Placement, str, int] | None = None
    tried = []
    for name in names:
        for s in range(seed, seed + seeds):
            start = time.perf_counter()
            parts = repair_balance(RUNNERS[name](problem, s), problem.adj, problem.n_parts, problem.cap)
            placement = place_blocks(tiling, graph, profile, parts, progress)
            m = evaluate(placement, graph, profile)
            hops = float(m["spike_hops_per_step"])
            tried.append({"partitioner": name, "seed": s, "spike_hops_per_step": hops,
                          "inter_chip_spikes_per_step": float(m["inter_chip_spikes_per_step"]),
                          "seconds": round(time.perf_counter() - start, 3)})
            if best is None or hops < best[0]:
                best = (hops, placement, name, s)
    assert best is not None
    _, placement, name, s = best
    placement.method = f"{name} chips (seed {s}) + greedy/swap cores"
    return placement, PartitionChoice(name, s, tried, notes)
