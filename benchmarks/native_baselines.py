"""Classical registration baselines for the native benchmark: ANTs affine and ANTs SyN (antspyx), run on the same
files the project's models read, scored with the project's own metrics on the fixed image's label grid.

antspyx is installed for the benchmark only (`pip install --no-deps antspyx==0.6.3 statsmodels webcolors`; its
wheel bundles ANTs). Its registrations run with one ITK thread and a fixed random seed, yet two runs of the
benchmark differed by up to 0.0014 Dice (ANTs samples its metric at random points): read the ANTs rows to about
0.002.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from spikereg_deploy.metrics import dice_per_label

#: (label, antspyx type_of_transform): the two classical references the issue names
METHODS = (("ANTs affine", "Affine"), ("ANTs SyN", "SyN"))


def _ants() -> Any:
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")  # reproducible sums
    try:
        import ants
    except ImportError:
        raise SystemExit("the native benchmark's baselines need antspyx: pip install --no-deps antspyx==0.6.3 "
                         "statsmodels webcolors") from None
    return ants


def _canonical_labels(path: Path) -> np.ndarray:
    """A label file in RAS+ voxel order (what the project's scoring grid uses after reorientation)."""
    return np.asarray(nib.as_closest_canonical(nib.load(str(path))).dataobj).astype(np.int16)


def register(fixed: Path, moving: Path, moving_labels: Path, fixed_labels: Path, method: str,
             seed: int = 0) -> dict[str, Any]:
    """One ANTs registration: Dice over the fixed labels (Learn2Reg's nanmean), and for a deformable method the
    fraction of voxels whose warp has det J <= 0; measured wall time."""
    ants = _ants()
    start = time.perf_counter()
    f_img, m_img = ants.image_read(str(fixed)), ants.image_read(str(moving))
    reg = ants.registration(f_img, m_img, type_of_transform=method, random_seed=seed)
    warped = ants.apply_transforms(f_img, ants.image_read(str(moving_labels)), transformlist=reg["fwdtransforms"],
                                   interpolator="nearestNeighbor")
    seconds = time.perf_counter() - start
    # back through a file, so the labels are read exactly as the project reads any label file (RAS+)
    tmp = Path(reg["fwdtransforms"][0]).with_name("spikereg_warped_labels.nii.gz")
    ants.image_write(warped, str(tmp))
    warped_labels, fixed_arr = _canonical_labels(tmp), _canonical_labels(fixed_labels)
    tmp.unlink(missing_ok=True)
    moving_arr = _canonical_labels(moving_labels)
    row: dict[str, Any] = {"dice": float(np.nanmean(dice_per_label(fixed_arr, warped_labels, moving=moving_arr))),
                           "dice_before": float(np.nanmean(dice_per_label(fixed_arr, moving_arr))),
                           "seconds": round(seconds, 1)}
    warp = next((t for t in reg["fwdtransforms"] if t.endswith(".nii.gz")), None)
    if warp is not None:
        jac = ants.create_jacobian_determinant_image(f_img, warp).numpy()
        row["fraction_jacobian_nonpositive"] = float((jac <= 0).mean())
    else:
        row["fraction_jacobian_nonpositive"] = 0.0  # an affine map with positive determinant folds nowhere
    for path in reg["fwdtransforms"] + reg["invtransforms"]:
        if Path(path).exists() and Path(path).parent == Path(reg["fwdtransforms"][0]).parent:
            Path(path).unlink(missing_ok=True)
    return row
