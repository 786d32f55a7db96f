"""One canonical voxel order (RAS+) for every input, and the way back to each file's own order.

The same anatomy can be stored with its array axes in any order and direction; a network that sees the array sees a
different image each time. Every file is therefore turned to nibabel's closest canonical order (axis 0 towards
Right, 1 towards Anterior, 2 towards Superior) on loading, with the affine adjusted so every voxel keeps its world
position, and every output is turned back to the file's order before it is written. Vectors stored in world
coordinates (the displacement in mm) do not change under this reordering: only the voxel layout does.
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np
from nibabel import orientations as ornt_lib
from scipy import ndimage

__all__ = ["CANONICAL_CODE", "Orientation", "orientation_of", "orientation_code", "slice_plane", "resample_onto"]

CANONICAL_CODE = "RAS"
_CANONICAL_ORNT = np.array([[0, 1], [1, 1], [2, 1]], dtype=np.float64)
Shape3 = tuple[int, int, int]


def orientation_code(affine: np.ndarray) -> str:
    """Axis codes of a voxel-to-world affine, e.g. "RAS" or "LPI" (the world direction each array axis points to)."""
    return "".join(nib.aff2axcodes(np.asarray(affine, dtype=np.float64)))


_PLANE_OF_AXIS_CODE = {"R": "sagittal", "L": "sagittal", "A": "coronal", "P": "coronal", "S": "axial", "I": "axial"}


def slice_plane(affine: np.ndarray, axis: int) -> str:
    """Anatomical name of the slice taken at a fixed index of array `axis`: for RAS data axis 0 gives sagittal
    slices, 1 coronal, 2 axial."""
    return _PLANE_OF_AXIS_CODE[orientation_code(affine)[axis]]


@dataclass(frozen=True)
class Orientation:
    """How a file's voxel array maps to canonical RAS+ order: its own affine and shape, and nibabel's transform."""

    file_affine: np.ndarray  # voxel -> world mm of the array as stored in the file
    file_shape: Shape3
    to_canonical_ornt: np.ndarray  # nibabel orientation array, file axes -> canonical axes

    @property
    def code(self) -> str:
        return orientation_code(self.file_affine)

    @property
    def is_canonical(self) -> bool:
        return bool(np.array_equal(self.to_canonical_ornt, _CANONICAL_ORNT))

    @property
    def canonical_affine(self) -> np.ndarray:
        """Voxel-to-world affine (mm) of the canonical array: same world positions, RAS+ voxel order."""
        return self.file_affine @ ornt_lib.inv_ornt_aff(self.to_canonical_ornt, self.file_shape)

    @property
    def canonical_shape(self) -> Shape3:
        order = self.to_canonical_ornt[:, 0].astype(int)
        shape = [0, 0, 0]
        for file_axis, canonical_axis in enumerate(order):
            shape[canonical_axis] = self.file_shape[file_axis]
        return tuple(shape)  # type: ignore[return-value]

    def to_canonical(self, array: np.ndarray) -> np.ndarray:
        """File order -> canonical order of the first three axes (trailing axes, e.g. vector components, kept)."""
        return np.ascontiguousarray(ornt_lib.apply_orientation(np.asarray(array), self.to_canonical_ornt))

    def from_canonical(self, array: np.ndarray) -> np.ndarray:
        """Canonical order -> the file's order of the first three axes (the inverse of `to_canonical`)."""
        back = ornt_lib.ornt_transform(_CANONICAL_ORNT, self.to_canonical_ornt)
        return np.ascontiguousarray(ornt_lib.apply_orientation(np.asarray(array), back))


def orientation_of(affine: np.ndarray, shape: tuple[int, ...]) -> Orientation:
    """The Orientation of an array of `shape` (first three axes) stored with `affine` (voxel -> world mm)."""
    affine = np.asarray(affine, dtype=np.float64)
    shape3 = tuple(int(n) for n in shape[:3])
    return Orientation(affine, shape3, ornt_lib.io_orientation(affine))  # type: ignore[arg-type]


def resample_onto(data: np.ndarray, affine: np.ndarray, target_affine: np.ndarray, target_shape: Shape3,
                  order: int) -> np.ndarray:
    """`data` (grid `affine`) sampled at the voxel centres of another grid, through world mm.

    order 1 for images (trilinear), 0 for label maps (nearest, so no label is invented); points outside take the
    nearest edge value, as every warp in the project does.
    """
    matrix = np.linalg.inv(np.asarray(affine, dtype=np.float64)) @ np.asarray(target_affine, dtype=np.float64)
    work = data if order == 0 else np.asarray(data, dtype=np.float32)
    out = ndimage.affine_transform(work, matrix[:3, :3], matrix[:3, 3], output_shape=tuple(target_shape),
                                   order=order, mode="nearest")
    return out.astype(data.dtype, copy=False)
