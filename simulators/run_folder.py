"""Simulate one registration pair into an output folder: the pair, the memory check, the run, the outputs.

`spikereg-simulate`, `spikereg-energy` (when no report is given) and `spikereg-run` call these, so a folder
written by any of them holds the same four files, all or none.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from spikereg_deploy.atomic import atomic_folder
from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.network import NetworkSpec

from . import simulation as sim

OUTPUT_FILES = ("displacement.nii.gz", "warped.nii.gz", "report.json", "rates.png")
DEFAULT_SHAPE = (32, 32, 32)  # the embedded pair's grid when no size is given


def load_pair(multiple: int, *, fixed: str | None = None, moving: str | None = None,
              input_shape: tuple[int, int, int] | None = None, seed: int = 0) -> tuple[Any, str]:
    """The pair on the network grid and a description; files and sizes are checked before anything runs."""
    if bool(fixed) != bool(moving):
        raise SpikeRegError("give both --fixed and --moving, or neither (embedded pair)")
    shape = tuple(input_shape) if input_shape else None
    if shape is not None and any(n <= 0 or n % multiple for n in shape):
        raise SpikeRegError(f"--input-shape {'x'.join(map(str, shape))} does not suit the network: sizes must be "
                            f"positive multiples of {multiple}")
    if fixed:
        from spikereg_deploy.imaging.nifti import load_volume
        from spikereg_deploy.imaging.pairs import pair_from_files

        if shape is None:
            native = load_volume(fixed).shape
            if any(n % multiple for n in native):
                raise SpikeRegError(f"volume {'x'.join(map(str, native))} does not suit the network (sizes must be "
                                    f"multiples of {multiple}); pass --input-shape to resample", fixed)
            shape = native
        pair = pair_from_files(fixed, moving, target_shape=shape, multiple=multiple)
        return pair, f"{fixed} <- {moving}"
    from spikereg_deploy.imaging.synthetic import embedded_pairs

    pair = embedded_pairs(1, shape=shape or DEFAULT_SHAPE, seed=seed)[0]
    return pair, f"embedded pair ({pair.name})"


def simulate_to_folder(spec: NetworkSpec, weights: dict[str, np.ndarray], pair: tuple[Any, str], out: str | Path,
                       *, max_memory: str | int, engine: str = "lava", tag: str = "fixed_pt",
                       net_description: str = "", moving_path: str | None = None,
                       progress: bool = True) -> dict[str, Any]:
    """Run the pair, write displacement.nii.gz, warped.nii.gz, report.json and rates.png into `out` (all four or
    none) and return the report."""
    import torch

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpikeRegError("output exists and is not a folder", out)
    torch.set_num_threads(1 if engine == "lava" else 2)  # Lava forks a process per process model
    max_bytes = sim.parse_memory(max_memory) if isinstance(max_memory, str) else int(max_memory)
    registration_pair, pair_description = pair
    image = np.stack([registration_pair.fixed, registration_pair.moving]).astype(np.float32)
    input_shape = tuple(int(n) for n in image.shape[1:])
    spec.geometry(input_shape)
    need = sim.check_memory(spec, input_shape, engine, max_bytes)
    if progress:
        print(f"memory estimate: {sim.human_bytes(need)} for {engine} at {'x'.join(map(str, input_shape))} "
              f"(projected)", file=sys.stderr)
    result = sim.simulate(spec, weights, image, engine=engine, tag=tag, progress=progress)
    meta = {"net": net_description, "pair": pair_description, "fixed_channel": 0, "moving_channel": 1}
    report = sim.build_report(result, spec, input_shape, meta)
    with atomic_folder(out) as staging:  # the old complete folder or the new one, never a mix
        _write_outputs(staging, result, report, registration_pair, moving_path)
    return report


def _write_outputs(staging: Path, result: sim.SimulationResult, report: dict, pair: Any,
                   moving_path: str | None) -> None:
    """Displacement (D, H, W, 3) in voxels and the warped moving image, on the input file's grid when given."""
    from spikereg_deploy.imaging.nifti import load_volume, save_volume
    from spikereg_deploy.imaging.warp import warp_image

    disp, moving, affine = result.displacement, pair.moving, pair.affine
    if pair.transform is not None and moving_path:
        from spikereg_deploy.imaging.preprocess import normalize_intensity, restore_to_grid

        original = load_volume(moving_path)
        disp = restore_to_grid(disp, pair.transform, kind="displacement")
        moving, affine = normalize_intensity(original.data), original.affine
    save_volume(staging / "displacement.nii.gz", np.moveaxis(disp, 0, -1).astype(np.float32), affine)
    save_volume(staging / "warped.nii.gz", warp_image(moving, disp).astype(np.float32), affine)
    sim.write_json(staging / "report.json", report)
    sim.plot_rates(report, staging / "rates.png")
