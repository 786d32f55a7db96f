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
from . import tiled

OUTPUT_FILES = ("displacement.nii.gz", "warped.nii.gz", "report.json", "rates.png")
ITK_FIELD = "displacement_itk.nii.gz"  # --warp-format itk: the same field in ITK's LPS components
WARPED_LABELS = "warped_labels.nii.gz"  # --moving-labels: the moving labels warped by nearest neighbour
WARP_FORMATS = ("ras", "itk")
DEFAULT_SHAPE = (32, 32, 32)  # the embedded pair's grid when no size is given


def load_pair(multiple: int, *, fixed: str | None = None, moving: str | None = None,
              input_shape: tuple[int, int, int] | None = None, seed: int = 0, resolution: float | None = None,
              fixed_labels: str | None = None, moving_labels: str | None = None, prealign: bool = False
              ) -> tuple[Any, str]:
    """The pair on the network grid and a description; files and sizes are checked before anything runs.

    Without `input_shape` or `resolution` a file pair runs at its own size (cropped to the foreground and padded
    to the network's multiple, not resampled); `resolution` (mm) resamples it to that spacing, `input_shape` fits
    it into that shape.
    """
    if bool(fixed) != bool(moving):
        raise SpikeRegError("give both --fixed and --moving, or neither (embedded pair)")
    if not fixed and (fixed_labels or moving_labels or resolution is not None or prealign):
        raise SpikeRegError("--fixed-labels, --moving-labels, --resolution and --prealign apply to --fixed/--moving "
                            "files")
    if input_shape and resolution is not None:
        raise SpikeRegError("give --input-shape or --resolution, not both")
    shape = tuple(input_shape) if input_shape else None
    if shape is not None and any(n <= 0 or n % multiple for n in shape):
        raise SpikeRegError(f"--input-shape {'x'.join(map(str, shape))} does not suit the network: sizes must be "
                            f"positive multiples of {multiple}")
    if fixed:
        from spikereg_deploy.imaging.nifti import load_volume
        from spikereg_deploy.imaging.pairs import pair_from_files

        if shape is None and resolution is None:
            native = load_volume(fixed).shape
            if any(n % multiple for n in native):
                raise SpikeRegError(f"volume {'x'.join(map(str, native))} does not suit the network (sizes must be "
                                    f"multiples of {multiple}); pass --input-shape or --resolution to resample",
                                    fixed)
            shape = native
        pair = pair_from_files(fixed, moving, fixed_labels, moving_labels, target_shape=shape, multiple=multiple,
                               resolution=resolution, prealign=prealign)
        return pair, f"{fixed} <- {moving}"
    from spikereg_deploy.imaging.synthetic import embedded_pairs

    pair = embedded_pairs(1, shape=shape or DEFAULT_SHAPE, seed=seed)[0]
    return pair, f"embedded pair ({pair.name})"


def simulate_to_folder(spec: NetworkSpec, weights: dict[str, np.ndarray], pair: tuple[Any, str], out: str | Path,
                       *, max_memory: str | int, engine: str = "lava", tag: str = "fixed_pt",
                       net_description: str = "", moving_path: str | None = None, warp_format: str = "ras",
                       progress: bool = True, tiles: int | str = 1) -> dict[str, Any]:
    """Run the pair, write displacement.nii.gz, warped.nii.gz, report.json and rates.png into `out` (all four or
    none; plus displacement_itk.nii.gz for `warp_format` "itk" and warped_labels.nii.gz when the pair has moving
    labels) and return the report. `moving_path` is kept for callers; the pair itself carries the moving image.
    `tiles` > 1 (or "auto": the fewest that fit `max_memory`) runs overlapping slabs (`tiled.py`)."""
    import torch

    from spikereg_deploy.imaging.native import grid_report

    if warp_format not in WARP_FORMATS:
        raise SpikeRegError(f"--warp-format {warp_format!r}: choose one of {', '.join(WARP_FORMATS)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpikeRegError("output exists and is not a folder", out)
    torch.set_num_threads(1 if engine == "lava" else 2)  # Lava forks a process per process model
    max_bytes = sim.parse_memory(max_memory) if isinstance(max_memory, str) else int(max_memory)
    registration_pair, pair_description = pair
    image = np.stack([registration_pair.fixed, registration_pair.moving]).astype(np.float32)
    input_shape = tuple(int(n) for n in image.shape[1:])
    spec.geometry(input_shape)
    if tiles == 1:
        need = sim.check_memory(spec, input_shape, engine, max_bytes)
        plan = None
    else:
        plan = tiled.plan_tiles(spec, input_shape, engine, max_bytes, tiles)
        need = plan.bytes_per_slab
    if progress:
        where = f" per tile ({len(plan.slabs)} tiles)" if plan and len(plan.slabs) > 1 else ""
        print(f"memory estimate: {sim.human_bytes(need)}{where} for {engine} at {'x'.join(map(str, input_shape))} "
              f"(projected)", file=sys.stderr)
    if plan is None:
        result = sim.simulate(spec, weights, image, engine=engine, tag=tag, progress=progress)
    else:
        result = tiled.simulate_tiled(spec, weights, image, plan, engine=engine, tag=tag, progress=progress)
    meta = {"net": net_description, "pair": pair_description, "fixed_channel": 0, "moving_channel": 1}
    report = sim.build_report(result, spec, input_shape, meta)
    if plan is not None:
        report["tiling"] = plan.to_dict()
    report["grid"] = grid_report(registration_pair.native, registration_pair.transform, registration_pair.affine)
    report["grid"]["network_shape"] = list(input_shape)
    with atomic_folder(out) as staging:  # the old complete folder or the new one, never a mix
        report["outputs"] = write_registration_outputs(staging, result.displacement, registration_pair, warp_format)
        if "labels" in report["outputs"]:
            report["dice"] = report["outputs"].pop("labels")
        sim.write_json(staging / "report.json", report)
        sim.plot_rates(report, staging / "rates.png")
    return report


def write_registration_outputs(folder: Path, disp: np.ndarray, pair: Any, warp_format: str = "ras"
                               ) -> dict[str, Any]:
    """The field (world mm, RAS; plus ITK's LPS with "itk"), the warped moving image and labels, on the fixed file's
    grid and voxel order; returns what was written with its units and conventions (the report's `outputs`)."""
    from spikereg_deploy.imaging.native import native_displacement, ras_to_lps, voxels_to_mm
    from spikereg_deploy.imaging.nifti import save_vector_field, save_volume
    from spikereg_deploy.imaging.warp import warp_image, warp_labels
    from spikereg_deploy.metrics import dice_per_label, label_list

    native = pair.native
    if native is not None and pair.transform is not None:
        grid_disp = native_displacement(disp, pair.transform, native.prealign)  # fixed voxels, canonical, whole
        affine, moving, moving_labels, fixed_labels = (native.affine, native.moving, native.moving_labels,
                                                       native.fixed_labels)
        to_file, file_affine = native.orientation.from_canonical, native.orientation.file_affine
        intensities = "the moving file's own intensities"
    else:  # an embedded pair lives on the network grid; it has no file to go back to
        grid_disp, affine, moving, moving_labels, fixed_labels = disp, pair.affine, pair.moving, None, None
        to_file, file_affine = (lambda a: a), pair.affine
        intensities = "the embedded pair's normalised intensities (it has no file)"
    affine = np.asarray(affine, dtype=np.float32).astype(np.float64)  # as the NIfTI header stores it (float32), so
    field_mm = voxels_to_mm(grid_disp, affine)  # the file's field and its affine convert back to exactly these voxels
    written: dict[str, Any] = {"displacement.nii.gz": {
        "units": "mm", "frame": "world RAS+ (nibabel): components u_R, u_A, u_S",
        "layout": "5-D (X, Y, Z, 1, 3), NIfTI intent 1007 (vector), the fixed file's grid and voxel order",
        "convention": "warped(p) = moving(p + u(p)) for every world point p of the fixed grid",
        "max_abs_mm": float(np.abs(field_mm).max()) if field_mm.size else 0.0}}
    save_vector_field(folder / "displacement.nii.gz", to_file(field_mm), file_affine)
    if warp_format == "itk":
        save_vector_field(folder / ITK_FIELD, to_file(ras_to_lps(field_mm)), file_affine)
        written[ITK_FIELD] = {"units": "mm", "frame": "world LPS+ (ITK physical space): u_L, u_P, u_S",
                              "layout": "as displacement.nii.gz", "applies_with":
                              "SimpleITK DisplacementFieldTransform / antsApplyTransforms, fixed image as reference"}
    save_volume(folder / "warped.nii.gz", to_file(warp_image(moving, grid_disp)), file_affine)
    written["warped.nii.gz"] = {"intensities": intensities, "interpolation": "trilinear, edge values outside"}
    if moving_labels is not None:
        warped_labels = warp_labels(moving_labels, grid_disp)
        save_volume(folder / WARPED_LABELS, to_file(warped_labels), file_affine)
        written[WARPED_LABELS] = {"interpolation": "nearest neighbour (no label invented)"}
        if fixed_labels is not None:
            labels = label_list(fixed_labels)
            after = dice_per_label(fixed_labels, warped_labels, labels)
            before = dice_per_label(fixed_labels, moving_labels, labels)
            written["labels"] = {
                "grid": "the fixed label map's native grid (measured)",
                "per_label": {str(int(lab)): {"before": _num(b), "after": _num(a)}
                              for lab, b, a in zip(labels, before, after, strict=True)},
                "mean_before": _num(np.nanmean(before)), "mean_after": _num(np.nanmean(after))}
    return written


def _num(value: float) -> float | None:
    """JSON has no NaN: a label absent from both maps is null."""
    return float(value) if np.isfinite(value) else None
