"""NIfTI input and output with checks that turn every bad file into one DataError naming it.

A user's image goes through here before anything else sees it, so shape, value and grid problems surface as
one line ("<file>: is 4-D ...") instead of a broadcasting error deep inside the network.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from ..atomic import atomic_file
from ..errors import DataError
from .orientation import Orientation, orientation_of

__all__ = ["Volume", "load_volume", "load_label_map", "check_same_grid", "save_volume", "save_vector_field"]

PathLike = str | os.PathLike[str]
_AFFINE_TOL = 1e-4
_LABEL_MIN, _LABEL_MAX = np.iinfo(np.int16).min, np.iinfo(np.int16).max


@dataclass
class Volume:
    """A 3-D image in canonical RAS+ voxel order: data (float32, or int16 for label maps), its voxel-to-world affine
    (mm), spacing (mm) and the file's own `orientation` (to write results back in the file's order)."""

    data: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    path: str
    orientation: Orientation | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.data.shape)  # type: ignore[return-value]


def _read(path: PathLike) -> tuple[nib.spatialimages.SpatialImage, Path]:
    p = Path(path)
    if not p.exists():
        raise DataError("file not found", p)
    if not p.is_file():
        raise DataError("is not a file", p)
    try:
        img = nib.load(str(p))
    except Exception as err:  # nibabel raises many types for a non-image file; all mean the same to the user
        raise DataError(f"not readable as NIfTI ({type(err).__name__}: {err})".splitlines()[0], p) from None
    if not isinstance(img, nib.spatialimages.SpatialImage):
        raise DataError("not a spatial image (NIfTI expected)", p)
    return img, p


def _as_3d(shape: tuple[int, ...], p: Path) -> tuple[int, int, int]:
    """Drop trailing singleton dimensions (a 4-D file with one volume); anything else must already be 3-D."""
    dims = list(shape)
    while len(dims) > 3 and dims[-1] == 1:
        dims.pop()
    if len(dims) != 3:
        kind = f"{len(shape)}-D, shape {'x'.join(map(str, shape))}"
        raise DataError(f"is {kind}; expected a single 3-D volume", p)
    if min(dims) < 1:
        raise DataError(f"has an empty dimension (shape {shape})", p)
    return dims[0], dims[1], dims[2]


def _load_array(path: PathLike, dtype: type) -> tuple[np.ndarray, nib.spatialimages.SpatialImage, Path]:
    img, p = _read(path)
    shape3 = _as_3d(tuple(img.shape), p)
    stored = np.dtype(img.get_data_dtype())
    if stored.kind not in "biuf":  # complex (nibabel would drop the imaginary part with a warning), RGB, ...
        name = f"{'/'.join(stored.names)} (several values per voxel)" if stored.names else stored.name
        raise DataError(f"voxel type {name} is not a real number (one real intensity per voxel expected)", p)
    try:
        data = np.asarray(img.get_fdata(dtype=dtype)).reshape(shape3)
    except (OSError, EOFError, ValueError, zlib.error) as err:
        raise DataError(
            f"could not read the voxel data ({type(err).__name__}: {err})".splitlines()[0], p
        ) from None
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise DataError(f"contains {bad} non-finite voxel values (NaN or inf)", p)
    return data, img, p


def _spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size (mm) along each array axis: the length of each affine column."""
    zooms = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    return float(zooms[0]), float(zooms[1]), float(zooms[2])


def _canonical(data: np.ndarray, img: nib.spatialimages.SpatialImage, p: Path) -> Volume:
    """The array turned to RAS+ order (nibabel's closest canonical), its affine keeping every voxel's position."""
    orientation = orientation_of(np.asarray(img.affine, dtype=np.float64), data.shape)
    affine = orientation.canonical_affine
    return Volume(data=orientation.to_canonical(data), affine=affine, spacing=_spacing(affine), path=str(p),
                  orientation=orientation)


def load_volume(path: PathLike) -> Volume:
    """Load a 3-D image as float32 (intensity units of the file) in canonical RAS+ order with its affine (mm).

    An image with no non-zero voxel carries nothing to register (and normalises to nothing): it is refused here,
    naming the file, instead of producing a meaningless field.
    """
    data, img, p = _load_array(path, np.float32)
    if not np.any(data != 0):
        raise DataError("image is all zero (nothing to register)", p)
    return _canonical(data, img, p)


def load_label_map(path: PathLike) -> Volume:
    """Load an integer label map (0 = background) as int16; errors if values are not integers or all zero.

    Labels are read as float64 first so a float-encoded map (common from resampling tools) is accepted when
    its values are whole numbers, and rejected when interpolation left fractions that would make Dice
    meaningless.
    """
    data, img, p = _load_array(path, np.float64)
    frac = np.count_nonzero(data != np.round(data))
    if frac:
        raise DataError(f"is not a label map: {frac} voxels have non-integer values", p)
    if data.min() < _LABEL_MIN or data.max() > _LABEL_MAX:
        raise DataError(f"label values {data.min():.0f}..{data.max():.0f} do not fit int16", p)
    labels = data.astype(np.int16)
    if not np.any(labels != 0):
        raise DataError("label map is empty (only background label 0)", p)
    return _canonical(labels, img, p)


def check_same_grid(a: Volume, b: Volume) -> None:
    """Raise DataError naming both files unless `a` and `b` share shape and affine (to 1e-4 mm)."""
    if a.shape != b.shape:
        raise DataError(
            f"grid differs from {b.path}: shape {'x'.join(map(str, a.shape))} vs "
            f"{'x'.join(map(str, b.shape))}",
            a.path,
        )
    if not np.allclose(a.affine, b.affine, atol=_AFFINE_TOL, rtol=0.0):
        diff = float(np.max(np.abs(a.affine - b.affine)))
        raise DataError(f"grid differs from {b.path}: affines differ by up to {diff:.4g} mm", a.path)


def _nifti_suffix(target: Path) -> str:
    name = target.name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    if name.endswith(".nii"):
        return ".nii"
    raise DataError("output name must end in .nii or .nii.gz", target)


def _write(target: Path, img: nib.Nifti1Image) -> Path:
    """Write atomically with both sform and qform set (code 1, scanner): ITK reads the qform, nibabel the sform."""
    img.set_sform(img.affine, code=1)
    img.set_qform(img.affine, code=1)
    img.header.set_xyzt_units("mm")
    with atomic_file(target, suffix=_nifti_suffix(target)) as tmp:
        nib.save(img, str(tmp))
    return target


def save_vector_field(path: PathLike, field: np.ndarray, affine: np.ndarray) -> Path:
    """Write a displacement field (X, Y, Z, 3), world mm, as the 5-D (X, Y, Z, 1, 3) NIfTI with the vector intent
    code (1007) that nibabel, ITK, SimpleITK and ANTs read as a vector image; atomic.

    float64: the network's field is in voxels, and float64 mm converts back to the same float32 voxel values
    (`native.mm_to_voxels`), so a field can be compared exactly with one written in voxels.
    """
    arr = np.asarray(field, dtype=np.float64)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"a displacement field must have shape (X, Y, Z, 3), got {arr.shape}")
    img = nib.Nifti1Image(arr[:, :, :, None, :], np.asarray(affine, dtype=np.float64))
    img.header.set_intent("vector", (), name="displacement mm")
    return _write(Path(path), img)


def save_volume(path: PathLike, data: np.ndarray, affine: np.ndarray) -> Path:
    """Write `data` (3-D, or 4-D with vectors last) with `affine` (mm) atomically; returns the path written.

    Integer arrays are stored as int16 (label maps), everything else as float32. The file only appears once
    complete, so a crash never leaves a truncated .nii.gz that later loads as garbage.
    """
    target = Path(path)
    _nifti_suffix(target)
    arr = np.asarray(data)
    if arr.ndim not in (3, 4):
        raise ValueError(f"save_volume expects a 3-D or 4-D array, got shape {arr.shape}")
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"affine must be 4x4, got {affine.shape}")
    arr = arr.astype(np.int16 if np.issubdtype(arr.dtype, np.integer) else np.float32, copy=False)
    return _write(target, nib.Nifti1Image(arr, affine))
