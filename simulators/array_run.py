"""Run a plain NetX network (lava-dl's own export) on one input array into an output folder.

The input is one sample in the layout SLAYER blocks take: a (C, H, W, T) spike train (input mode `spikes`, T from its
last axis) or a (C, H, W) static analog image in [0, 1] (input mode `analog`: the project's 8-bit graded input, T
given by the caller). netx's own (x, y, c) order is handled by netx; the description keeps (C, H, W) throughout.
The folder holds report.json, output_spikes.npy and rates.png, all or none. A plain network ends in spikes, not a
displacement readout, so the registration outputs are skipped and the report says why.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from spikereg_deploy.atomic import atomic_file, atomic_folder
from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.network import NetworkSpec

from . import simulation as sim

OUTPUT_FILES = ("report.json", "output_spikes.npy", "rates.png")
#: What a registration run writes and a plain NetX run does not, and why (the report's `skipped`).
SKIPPED = {
    "displacement.nii.gz, warped.nii.gz, displacement metrics": "the network ends in spiking neurons, not a "
    "displacement readout: there is no field to write or warp with",
    "dice, grid": "no fixed/moving images or label maps: the input is one array",
}
#: T of an analog input run when the caller gives none.
DEFAULT_ANALOG_T = 16


def _spatial(spec: NetworkSpec, input_shape: tuple[int, int, int]) -> tuple[int, ...]:
    """The file's own input layout: (C, H, W), or (C,) for a network whose input is a vector."""
    hw = tuple(input_shape[1:])
    return (spec.input_channels, *hw) if hw != (1, 1) else (spec.input_channels,)


def load_input_array(path: str | Path, spec: NetworkSpec, input_shape: tuple[int, int, int],
                     time_steps: int | None = None) -> tuple[NetworkSpec, np.ndarray]:
    """The run's description (T and input mode from the array) and the input as the engines take it: (C, 1, H, W, T)
    spikes or (C, 1, H, W) analog values. Any other shape, dtype or value is one line naming the file."""
    from spikereg_deploy.export.netx_plain import spec_for_run

    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise SpikeRegError("no such file", path) from None
    except (OSError, ValueError, EOFError) as err:
        raise SpikeRegError(f"not a readable .npy array ({err})", path) from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        raise SpikeRegError(f"input dtype {getattr(array, 'dtype', type(array).__name__)} is not numeric "
                            f"(give bool, integer or float spikes, or float analog values)", path)
    layout = _spatial(spec, input_shape)
    names = "x".join(map(str, layout))
    grid = (spec.input_channels, 1, *input_shape[1:])
    if array.shape[:-1] == layout and array.ndim == len(layout) + 1:  # a spike train (..., T)
        steps = array.shape[-1]
        if steps < 1 or (time_steps is not None and time_steps != steps):
            raise SpikeRegError(f"the spike train has T={steps} steps; --time-steps {time_steps} disagrees", path)
        if not np.isin(array, (0, 1)).all():
            raise SpikeRegError("a spike train (C, H, W, T) holds only 0 and 1 (for analog values give (C, H, W))",
                                path)
        return spec_for_run(spec, steps, "spikes"), array.astype(bool).reshape(*grid, steps)
    if array.shape == layout:  # a static analog image
        if array.dtype.kind != "f" or not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise SpikeRegError(f"an analog input ({names}) holds float values in [0, 1] (got dtype {array.dtype}, "
                                f"range {array.min():g}..{array.max():g})", path)
        steps = time_steps or DEFAULT_ANALOG_T
        return spec_for_run(spec, steps, "analog"), array.astype(np.float64).reshape(grid)
    raise SpikeRegError(f"input shape {'x'.join(map(str, array.shape))} does not fit the network's input: give "
                        f"({names}, T) spikes or ({names}) analog values", path)


def simulate_array_to_folder(spec: NetworkSpec, weights: dict[str, np.ndarray], image: np.ndarray,
                             input_shape: tuple[int, int, int], out: str | Path, *, max_memory: str | int,
                             engine: str = "lava", tag: str = "fixed_pt", meta: dict[str, Any] | None = None,
                             progress: bool = True) -> dict[str, Any]:
    """Run the array, write report.json, output_spikes.npy ((C, H, W, T) or (N, T) bool; graded layers: int64
    payloads) and rates.png into `out` (all or none); return the report."""
    import torch

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpikeRegError("output exists and is not a folder", out)
    torch.set_num_threads(1 if engine == "lava" else 2)  # Lava forks a process per process model
    max_bytes = sim.parse_memory(max_memory) if isinstance(max_memory, str) else int(max_memory)
    need = sim.check_memory(spec, input_shape, engine, max_bytes)
    if progress:
        print(f"memory estimate: {sim.human_bytes(need)} for {engine} (projected)", file=sys.stderr)
    result = sim.simulate(spec, weights, image, engine=engine, tag=tag, progress=progress)
    report = sim.build_report(result, spec, input_shape, {**(meta or {}), "input_mode": spec.input_mode})
    report["skipped"] = dict(SKIPPED)
    spikes = result.output_spikes
    assert spikes is not None
    spikes = spikes[:, 0] if spikes.shape[2:4] != (1, 1) else spikes.reshape(spikes.shape[0], -1)
    with atomic_folder(out) as staging:
        with atomic_file(staging / "output_spikes.npy", suffix=".npy") as tmp, open(tmp, "wb") as handle:
            np.save(handle, spikes)
        report["outputs"] = {"output_spikes.npy": {"layer": spec.readout.name, "shape": list(spikes.shape),
                                                   "dtype": str(spikes.dtype)}}  # graded: int64 payloads
        sim.write_json(staging / "report.json", report)
        sim.plot_rates(report, staging / "rates.png")
    return report
