"""The fixed image's own grid: where outputs are written, where scores are taken, and how to state the grid change.

The network runs on its own grid (cropped, resampled, padded: `preprocess.GridTransform`), in canonical RAS+ voxel
order (`orientation`). A user applies the result on the fixed image's grid, so the displacement is brought back
there, turned into world mm, and written in the fixed file's own voxel order. Conventions of the written field
(`docs/output-formats.md`): warped(p) = moving(p + u(p)) for every world point p of the fixed grid, u in mm; the
RAS file stores (u_R, u_A, u_S), the ITK file (u_L, u_P, u_S) = (-u_R, -u_A, u_S), the physical frame ITK uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .orientation import CANONICAL_CODE, Orientation
from .preprocess import GridTransform, restore_to_grid

__all__ = ["NativeGrid", "native_displacement", "voxels_to_mm", "mm_to_voxels", "ras_to_lps", "grid_report",
           "describe_grid"]


@dataclass
class NativeGrid:
    """A pair on the fixed image's grid (canonical order): the moving image in its original intensities, label maps
    and brain masks (int16 or None), all resampled onto this grid when the moving file had another one."""

    affine: np.ndarray  # canonical voxel -> world mm of the fixed grid
    orientation: Orientation  # the fixed file's voxel order, to write outputs back in it
    moving: np.ndarray
    fixed_labels: np.ndarray | None = None
    moving_labels: np.ndarray | None = None
    fixed_mask: np.ndarray | None = None
    moving_mask: np.ndarray | None = None
    moving_resampled: bool = False  # the moving file had another grid and was resampled onto this one (world mm)
    moving_orientation: str = CANONICAL_CODE
    requested_resolution: float | None = None  # --resolution (mm), None: the network grid was fitted by shape
    prealign: np.ndarray | None = None  # --prealign affine: fixed voxel -> moving voxel map (`prealign.py`)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.moving.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        zooms = np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))
        return float(zooms[0]), float(zooms[1]), float(zooms[2])


def native_displacement(disp: np.ndarray, transform: GridTransform, prealign: np.ndarray | None = None
                        ) -> np.ndarray:
    """Network-grid displacement (3, d, h, w; network voxels) -> fixed-grid displacement (3, D, H, W; fixed voxels,
    canonical axes), defined on the whole grid (edge values outside the crop box), composed with the pre-alignment
    when there was one."""
    from .prealign import compose_with_prealign

    return compose_with_prealign(restore_to_grid(disp, transform, kind="displacement"), prealign)


def voxels_to_mm(disp: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """(3, D, H, W) voxel displacement -> (D, H, W, 3) world displacement in mm: u_world = A[:3, :3] @ u_voxel."""
    linear = np.asarray(affine, dtype=np.float64)[:3, :3]
    return np.einsum("ij,j...->...i", linear, np.asarray(disp, dtype=np.float64))


def mm_to_voxels(field: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The inverse of `voxels_to_mm`: (D, H, W, 3) world mm (or the 5-D (D, H, W, 1, 3) file) -> (3, D, H, W)."""
    field = np.asarray(field, dtype=np.float64)
    if field.ndim == 5:
        field = field[:, :, :, 0, :]
    inverse = np.linalg.inv(np.asarray(affine, dtype=np.float64)[:3, :3])
    return np.einsum("ij,...j->i...", inverse, field)


def ras_to_lps(field: np.ndarray) -> np.ndarray:
    """World vectors (..., 3) from RAS+ (nibabel) to LPS+ (ITK) components: x and y change sign."""
    return np.asarray(field) * np.array([-1.0, -1.0, 1.0], dtype=np.asarray(field).dtype)


def _spacing(affine: np.ndarray) -> list[float]:
    return [round(float(s), 6) for s in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))]


def grid_report(native: NativeGrid | None, transform: GridTransform | None, network_affine: np.ndarray
                ) -> dict[str, Any]:
    """The `grid` block of a report: the input grid, the network grid, and whether and how one became the other."""
    network_shape = None if transform is None else list(transform.target_shape)
    if native is None or transform is None:
        return {"input": "embedded pair, generated on the network grid", "network_spacing_mm": _spacing(network_affine),
                "resampled": False, "reoriented": False, "network_shape": network_shape}
    resampled = transform.resampled_shape != transform.crop_shape
    return {
        "input_shape": list(native.orientation.file_shape),
        "input_spacing_mm": _spacing(native.orientation.file_affine),
        "input_orientation": native.orientation.code,
        "moving_orientation": native.moving_orientation,
        "canonical_orientation": CANONICAL_CODE,
        "reoriented": not native.orientation.is_canonical or native.moving_orientation != CANONICAL_CODE,
        "moving_resampled_to_fixed_grid": native.moving_resampled,
        "crop_start": list(transform.crop_start), "crop_stop": list(transform.crop_stop),
        "resampled": bool(resampled),
        "requested_resolution_mm": native.requested_resolution,
        "prealign": _prealign_entry(native.prealign),
        "network_shape": network_shape,
        "network_spacing_mm": _spacing(network_affine),
        "outputs_on": "the fixed image's grid and voxel order",
    }


def _prealign_entry(matrix: np.ndarray | None) -> dict[str, Any] | None:
    if matrix is None:
        return None
    from .prealign import PREALIGN_METHOD

    return {"method": PREALIGN_METHOD, "voxel_matrix": [[round(float(v), 6) for v in row] for row in matrix],
            "meaning": "fixed voxel x -> moving voxel M x (canonical axes); outputs are composed with it"}


def describe_grid(grid: dict[str, Any]) -> str:
    """One console line saying which grid the network ran on and how it got there."""
    shape = "x".join(map(str, grid.get("network_shape") or [])) or "?"
    spacing = "x".join(f"{s:.3g}" for s in grid["network_spacing_mm"])
    if "input_shape" not in grid:
        return f"grid: network {shape} at {spacing} mm ({grid['input']})"
    steps = []
    if grid["reoriented"]:
        steps.append(f"reoriented {grid['input_orientation']}->{grid['canonical_orientation']} and back")
    if grid.get("prealign"):
        steps.append("moving pre-aligned by an affine (SimpleITK, host)")
    if grid["moving_resampled_to_fixed_grid"]:
        steps.append("moving resampled onto the fixed grid")
    steps.append("resampled" if grid["resampled"] else "not resampled (crop and pad only)")
    target = (f"--resolution {grid['requested_resolution_mm']} mm" if grid["requested_resolution_mm"]
              else "fitted to the network's input shape")
    return (f"grid: input {'x'.join(map(str, grid['input_shape']))} at "
            f"{'x'.join(f'{s:.3g}' for s in grid['input_spacing_mm'])} mm ({grid['input_orientation']}) -> network "
            f"{shape} at {spacing} mm ({target}); {', '.join(steps)}; outputs on the fixed grid")
