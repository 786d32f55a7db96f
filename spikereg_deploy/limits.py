"""Limits before work: every size-like option is priced in bytes before anything is allocated.

A size a tool cannot handle (`--input-shape 65536 65536 65536`, `--fill-factor 1e-9`, `--pairs 1000000000`) must
end in one line with the estimate, exit 2, within a fraction of a second, not in minutes of swapping and a
MemoryError traceback. Each estimate is arithmetic on the network description (shapes, neuron counts), so it costs
nothing; the constants are calibrated on this project's machine (peak RSS, `/usr/bin/time -f %M`) and err high,
since their only use is to refuse what cannot fit.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from .errors import SpikeRegError
from .network import NetworkSpec

__all__ = ["DEFAULT_MAX_MEMORY", "DEFAULT_MAX_BYTES", "human_bytes", "parse_memory", "check_budget", "pair_bytes",
           "mapping_lower_bound_blocks", "mapping_bytes", "check_mapping_size", "check_export_size",
           "check_run_size", "check_pair_count", "evaluation_bytes"]

DEFAULT_MAX_MEMORY = "16G"  # of this machine's 24 GiB, leaving room for the OS and the parent process

# One synthetic or file pair on the network grid: the template (about 450 MB resident, measured at 32^3 and 64^3
# alike) plus fixed, moving, two label maps, two 3-channel deformations and their float64 work arrays per voxel.
PAIR_BASE_BYTES = 512 * 2**20
PAIR_BYTES_PER_VOXEL = 96

# `spikereg-map` peak RSS against blocks planned (loihi2): 107 MB at 629 blocks (32^3), 513 MB at 118,592 (the
# OASIS volume), 376 MB at 27,459 and 1.58 GB at 109,888 blocks (32^3 with fill factor 0.02 / 0.005: small
# blocks reach many others, so the traffic graph grows faster than the block count). 16 KiB a block covers all.
MAPPING_BASE_BYTES = 128 * 2**20
MAPPING_BYTES_PER_BLOCK = 16 * 2**10

# `spikereg-evaluate` keeps one row of metrics per pair and model for the statistics at the end (a dict of eight
# fields: 1.1 KiB measured with tracemalloc, 4 KiB allowed); pairs themselves are built one at a time.
EVALUATION_BYTES_PER_ROW = 4 * 2**10


def human_bytes(n: float) -> str:
    """211.5 MiB, 6.0 TiB, ... (binary units, as --max-memory reads them)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def parse_memory(text: str) -> int:
    """'16G', '800M', '2.5GiB' or bytes -> bytes (`--max-memory`)."""
    s = text.strip().upper().removesuffix("IB").removesuffix("B")
    factor = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(s[-1:], 1)
    number = s[:-1] if s[-1:] in "KMGT" else s
    try:
        value = float(number) * factor
    except ValueError:
        raise SpikeRegError(f"--max-memory: cannot read {text!r} (use e.g. 16G or 800M)") from None
    if not math.isfinite(value) or value <= 0:
        raise SpikeRegError(f"--max-memory must be positive, got {text!r}")
    return int(value)


DEFAULT_MAX_BYTES = parse_memory(DEFAULT_MAX_MEMORY)  # what tools without --max-memory allow


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(int(n)) for n in shape)


def check_budget(need: int, budget: int, what: str, hint: str = "") -> None:
    """One line, exit 2, when `need` bytes (an estimate) exceed `budget`: `what` names the option and its value."""
    if need > budget:
        tail = f"; {hint}" if hint else ""
        raise SpikeRegError(f"{what} needs about {human_bytes(need)} of memory (estimated, before any work), more "
                            f"than the {human_bytes(budget)} allowed{tail}")


def pair_bytes(shape: Sequence[int]) -> int:
    """Bytes to build one registration pair on a grid of `shape` voxels."""
    return PAIR_BASE_BYTES + PAIR_BYTES_PER_VOXEL * math.prod(int(n) for n in shape)


# Every network here ends in a readout of 3 channels (the displacement) on the input grid, and the readout lives
# on cores: a bound on blocks from the volume alone, before a model is loaded.
READOUT_CHANNELS = 3


def mapping_lower_bound_blocks(spec: NetworkSpec | None, shape: Sequence[int], neuron_budget: int) -> int:
    """Blocks the tiler must make at least: each layer's neurons over the neurons a core is filled with (the
    tiling's lower bound on neurons alone, so it needs no arrays); without a spec, the readout's alone."""
    if neuron_budget < 1:
        raise SpikeRegError(f"a core must hold at least one neuron, got a budget of {neuron_budget}")
    dims = tuple(int(n) for n in shape)
    if spec is None:
        return -(-READOUT_CHANNELS * math.prod(dims) // neuron_budget)
    geo = spec.geometry(dims)
    return sum(-(-g.neurons // neuron_budget) for name, g in geo.items() if spec.layer(name).kind != "input")


def mapping_bytes(spec: NetworkSpec | None, shape: Sequence[int], neuron_budget: int) -> int:
    """Bytes a mapping run needs at least (lower-bound blocks x the calibrated cost of one block)."""
    return MAPPING_BASE_BYTES + MAPPING_BYTES_PER_BLOCK * mapping_lower_bound_blocks(spec, shape, neuron_budget)


def check_mapping_size(spec: NetworkSpec | None, shape: Sequence[int], neuron_budget: int, fill_factor: float,
                       budget: int = DEFAULT_MAX_BYTES) -> None:
    """Refuse a mapping whose lower-bound block count alone would not fit in memory (`spikereg-map`)."""
    blocks = mapping_lower_bound_blocks(spec, shape, neuron_budget)
    check_budget(MAPPING_BASE_BYTES + MAPPING_BYTES_PER_BLOCK * blocks, budget,
                 f"mapping at {_shape_text(shape)} with fill factor {fill_factor:g} ({neuron_budget:,} neurons per "
                 f"core, at least {blocks:,} core blocks)",
                 "use a smaller --input-shape or a larger --fill-factor")


def check_export_size(spec: NetworkSpec | None, shape: Sequence[int], neuron_budget: int,
                      budget: int = DEFAULT_MAX_BYTES) -> None:
    """Refuse to write a .net for a volume no stage could use: mapping, the lightest use of a .net (it runs
    nothing), would already exceed the memory budget (`spec` None: the volume's bound, before loading a model)."""
    check_budget(mapping_bytes(spec, shape, neuron_budget), budget,
                 f"--input-shape {_shape_text(shape)}: even mapping this network",
                 "no stage could use the file; use a smaller --input-shape")


def check_run_size(shape: Sequence[int], budget: int, model_bytes: int = 0, what: str = "--input-shape") -> None:
    """Refuse a volume whose pair (and model run, when its estimate is known) would not fit: simulate, evaluate,
    run. Called once before anything is loaded (`model_bytes` 0) and again once the network is known."""
    check_budget(pair_bytes(shape) + model_bytes, budget, f"{what} {_shape_text(shape)}",
                 "use a smaller --input-shape")


def evaluation_bytes(pairs: int, models: int, shape: Sequence[int], model_bytes: int = 0) -> int:
    """Bytes `spikereg-evaluate` needs: one pair and one model run at a time, plus a row per pair and model."""
    return pair_bytes(shape) + model_bytes + EVALUATION_BYTES_PER_ROW * pairs * models


def check_pair_count(pairs: int, models: int, shape: Sequence[int], budget: int = DEFAULT_MAX_BYTES) -> None:
    """Pairs are built one at a time, so a count costs only its result rows: refuse a count that is not positive
    or whose rows alone would not fit."""
    if pairs < 1:
        raise SpikeRegError(f"--pairs must be at least 1, got {pairs}")
    check_budget(evaluation_bytes(pairs, models, shape), budget, f"--pairs {pairs:,} ({models} model(s))",
                 "evaluate fewer pairs per run (--seed picks another set)")
