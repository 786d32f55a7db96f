"""Intensity normalisation and grid fitting shared by training, simulation and evaluation.

Training and simulation must both call `preprocess_pair(fixed, moving, target_shape)`: a network trained on
one normalisation or grid and run on another sees different inputs and its spike rates, and so its energy
figures and its displacements, no longer mean what they did in training.

Grid fitting crops the volume to the foreground of the pair (plus a margin), scales it by one factor in every
axis so it fits the network's input shape (never enlarging it), and pads it centrally to that shape. The
returned `GridTransform` undoes all three steps so a result (image, label map, or displacement field) can be
written back on the input's grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from ..errors import DataError
from .nifti import Volume, check_same_grid

__all__ = [
    "GridTransform",
    "PreparedPair",
    "normalize_intensity",
    "shape_for",
    "foreground_box",
    "plan_grid",
    "plan_grid_at_resolution",
    "apply_grid",
    "fit_to_shape",
    "restore_to_grid",
    "preprocess_pair",
]

Shape3 = tuple[int, int, int]
Kind = Literal["image", "labels", "displacement"]


def normalize_intensity(data: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Clip to the [low, high] percentiles of the non-zero voxels and scale to [0, 1] (float32, unitless).

    Percentiles of the non-zero voxels ignore the zero background of skull-stripped scans, and clipping keeps
    a few bright vessels or artefacts from squeezing the brain into a narrow band of the input range.
    """
    data = np.asarray(data, dtype=np.float32)
    values = data[data != 0]
    if values.size == 0:
        return np.zeros_like(data)
    lo, hi = np.percentile(values, [low, high])
    if not hi > lo:
        return (data != 0).astype(np.float32)
    out = (np.clip(data.astype(np.float64), lo, hi) - lo) / (hi - lo)  # float64: the top lands on exactly 1
    return out.astype(np.float32)


def shape_for(shape: Sequence[int], multiple: int) -> Shape3:
    """Sizes rounded up to a multiple of `multiple` (voxels): the smallest grid such a U-Net takes."""
    if multiple < 1:
        raise ValueError("multiple must be >= 1")
    if len(shape) != 3 or min(shape) < 1:
        raise DataError(f"shape must be three positive sizes, got {tuple(shape)}")
    return tuple(int(math.ceil(int(n) / multiple) * multiple) for n in shape)  # type: ignore[return-value]


def foreground_box(*volumes: np.ndarray, margin: int = 2) -> tuple[Shape3, Shape3]:
    """Bounding box (start, stop; voxels) of the non-zero voxels of all volumes, grown by `margin` voxels."""
    mask = np.zeros(volumes[0].shape, dtype=bool)
    for v in volumes:
        mask |= np.asarray(v) != 0
    if not mask.any():
        return (0, 0, 0), tuple(int(n) for n in mask.shape)  # type: ignore[return-value]
    idx = np.argwhere(mask)
    start = np.maximum(idx.min(0) - margin, 0)
    stop = np.minimum(idx.max(0) + 1 + margin, mask.shape)
    return tuple(int(n) for n in start), tuple(int(n) for n in stop)  # type: ignore[return-value]


@dataclass(frozen=True)
class GridTransform:
    """How an input grid became the network grid: crop [crop_start, crop_stop), zoom to resampled_shape, pad.

    All sizes in voxels. `scale` is input voxels per network voxel along each axis (>= 1: only shrinking).
    """

    original_shape: Shape3
    crop_start: Shape3
    crop_stop: Shape3
    resampled_shape: Shape3
    pad_before: Shape3
    target_shape: Shape3

    @property
    def crop_shape(self) -> Shape3:
        return tuple(b - a for a, b in zip(self.crop_start, self.crop_stop, strict=True))  # type: ignore[return-value]

    @property
    def scale(self) -> tuple[float, float, float]:
        return tuple(c / r for c, r in zip(self.crop_shape, self.resampled_shape, strict=True))  # type: ignore

    def affine_out(self, affine_in: np.ndarray) -> np.ndarray:
        """Voxel-to-world affine (mm) of the network grid, given the input grid's affine (mm)."""
        s = np.asarray(self.scale)
        offset = np.asarray(self.crop_start) - s * np.asarray(self.pad_before) + 0.5 * s - 0.5
        m = np.eye(4)
        m[:3, :3] = np.diag(s)
        m[:3, 3] = offset
        return np.asarray(affine_in, dtype=np.float64) @ m


def plan_grid(
    shape: Sequence[int],
    target_shape: Sequence[int] | None = None,
    multiple: int = 1,
    crop: tuple[Sequence[int], Sequence[int]] | None = None,
) -> GridTransform:
    """Plan crop, isotropic shrink and pad from `shape` to `target_shape` rounded up to `multiple` (voxels).

    One factor for all axes keeps anatomy undistorted, so a displacement in any direction means the same
    distance; the volume is never enlarged because that adds compute without adding information.
    """
    shape3 = tuple(int(n) for n in shape)
    target = shape_for(shape3 if target_shape is None else target_shape, multiple)
    start, stop = crop if crop is not None else ((0, 0, 0), shape3)
    start = tuple(int(n) for n in start)
    stop = tuple(int(n) for n in stop)
    if any(not 0 <= a < b <= n for a, b, n in zip(start, stop, shape3, strict=True)):
        raise ValueError(f"crop box {start}..{stop} is not inside {shape3}")
    size = [b - a for a, b in zip(start, stop, strict=True)]
    factor = min(1.0, min(t / c for t, c in zip(target, size, strict=True)))
    resampled = tuple(max(1, min(t, int(round(c * factor)))) for t, c in zip(target, size, strict=True))
    pad = tuple((t - r) // 2 for t, r in zip(target, resampled, strict=True))
    return GridTransform(shape3, start, stop, resampled, pad, target)  # type: ignore[arg-type]


def plan_grid_at_resolution(
    shape: Sequence[int],
    spacing: Sequence[float],
    resolution: float,
    multiple: int = 1,
    crop: tuple[Sequence[int], Sequence[int]] | None = None,
) -> GridTransform:
    """Plan crop, resampling to `resolution` mm voxels and pad to sizes that are multiples of `multiple`.

    Each axis gets its own factor (input spacing / resolution, sizes rounded to whole voxels), so the network grid is
    isotropic in mm whatever the input's voxels; it may enlarge as well as shrink, because the user asked for that
    spacing. The spacing actually reached is `input spacing x scale` (rounding makes it differ slightly).
    """
    if not resolution > 0:
        raise DataError(f"--resolution must be a positive number of mm, got {resolution}")
    shape3 = tuple(int(n) for n in shape)
    start, stop = crop if crop is not None else ((0, 0, 0), shape3)
    start, stop = tuple(int(n) for n in start), tuple(int(n) for n in stop)
    if any(not 0 <= a < b <= n for a, b, n in zip(start, stop, shape3, strict=True)):
        raise ValueError(f"crop box {start}..{stop} is not inside {shape3}")
    size = [b - a for a, b in zip(start, stop, strict=True)]
    resampled = tuple(max(1, int(round(c * float(s) / resolution))) for c, s in zip(size, spacing, strict=True))
    target = shape_for(resampled, multiple)
    pad = tuple((t - r) // 2 for t, r in zip(target, resampled, strict=True))
    return GridTransform(shape3, start, stop, resampled, pad, target)  # type: ignore[arg-type]


def _zoom(array: np.ndarray, out_shape: Sequence[int], order: int, antialias: bool) -> np.ndarray:
    if tuple(array.shape) == tuple(out_shape):
        return array
    factors = [o / i for o, i in zip(out_shape, array.shape, strict=True)]
    if antialias:
        sigma = [max(0.0, (1.0 / f - 1.0) / 2.0) for f in factors]
        if any(s > 0 for s in sigma):
            array = ndimage.gaussian_filter(array, sigma, mode="nearest")
    out = ndimage.zoom(array, factors, order=order, mode="nearest", grid_mode=True)
    if tuple(out.shape) != tuple(out_shape):  # guard against rounding in scipy's shape computation
        raise AssertionError(f"zoom produced {out.shape}, expected {tuple(out_shape)}")
    return out


def apply_grid(array: np.ndarray, transform: GridTransform, order: int = 1) -> np.ndarray:
    """Put a volume on the network grid: crop, zoom (order 1 images, 0 labels; anti-aliased), pad."""
    array = np.asarray(array)
    if tuple(array.shape) != transform.original_shape:
        raise ValueError(
            f"array shape {array.shape} does not match the planned grid {transform.original_shape}"
        )
    sl = tuple(slice(a, b) for a, b in zip(transform.crop_start, transform.crop_stop, strict=True))
    cropped = array[sl]
    work = cropped if order == 0 else cropped.astype(np.float32, copy=False)
    zoomed = _zoom(work, transform.resampled_shape, order, antialias=order > 0).astype(
        array.dtype, copy=False
    )
    pad = [
        (b, t - r - b)
        for b, t, r in zip(
            transform.pad_before, transform.target_shape, transform.resampled_shape, strict=True
        )
    ]
    return np.pad(zoomed, pad, mode="constant")


def fit_to_shape(
    vol: np.ndarray,
    target_shape: Sequence[int] | None,
    multiple: int = 1,
    order: int = 1,
    crop_foreground: bool = True,
) -> tuple[np.ndarray, GridTransform]:
    """Fit one volume to `target_shape` (rounded up to `multiple`); returns the array and GridTransform."""
    vol = np.asarray(vol)
    crop = foreground_box(vol) if crop_foreground else None
    transform = plan_grid(vol.shape, target_shape, multiple, crop)
    return apply_grid(vol, transform, order), transform


def restore_to_grid(array: np.ndarray, transform: GridTransform, kind: Kind = "image") -> np.ndarray:
    """Bring a network-grid result back to the input grid (voxels of the input).

    kind="image": linear; "labels": nearest; "displacement": array (3, D, H, W) in network voxels, resampled
    linearly and each component multiplied by that axis's scale so vectors are in input voxels. Outside the
    crop box images and labels are 0; displacements take the value at the nearest box face (edge extension), so
    the field is defined on the whole grid and a zero band at the faces cannot fold the transform there.
    """
    array = np.asarray(array)
    target = transform.target_shape
    vector = kind == "displacement"
    if vector and (array.ndim != 4 or array.shape[0] != 3):
        raise ValueError(f"a displacement must have shape (3, D, H, W), got {array.shape}")
    grid = tuple(array.shape[1:]) if vector else tuple(array.shape)
    if grid != target:
        raise ValueError(f"array grid {grid} does not match the network grid {target}")
    inner = tuple(
        slice(b, b + r) for b, r in zip(transform.pad_before, transform.resampled_shape, strict=True)
    )
    sl = tuple(slice(a, b) for a, b in zip(transform.crop_start, transform.crop_stop, strict=True))
    if vector:
        outside = [(a, n - b) for a, b, n in zip(transform.crop_start, transform.crop_stop, transform.original_shape,
                                                  strict=True)]
        out = np.zeros((3, *transform.original_shape), dtype=np.float32)
        for i in range(3):
            comp = _zoom(array[i][inner].astype(np.float32), transform.crop_shape, 1, antialias=False)
            out[i] = np.pad(comp * np.float32(transform.scale[i]), outside, mode="edge")
        return out
    order = 0 if kind == "labels" else 1
    work = array[inner] if order == 0 else array[inner].astype(np.float32)
    out = np.zeros(transform.original_shape, dtype=work.dtype)
    out[sl] = _zoom(work, transform.crop_shape, order, antialias=False)
    return out


@dataclass
class PreparedPair:
    """A pair on the network grid: images float32 in [0, 1], labels int16 (or None), its affine (mm)."""

    fixed: np.ndarray
    moving: np.ndarray
    fixed_labels: np.ndarray | None
    moving_labels: np.ndarray | None
    affine: np.ndarray
    transform: GridTransform


def _unwrap(v: object) -> tuple[np.ndarray, np.ndarray | None]:
    data = getattr(v, "data", v)
    return np.asarray(data), getattr(v, "affine", None)


def preprocess_pair(
    fixed: object,
    moving: object,
    target_shape: Sequence[int] | None,
    *,
    multiple: int = 1,
    fixed_labels: object | None = None,
    moving_labels: object | None = None,
    crop_foreground: bool = True,
    resolution: float | None = None,
) -> PreparedPair:
    """The one preprocessing path for training, simulation and evaluation (see the module docstring).

    `fixed`/`moving` are `nifti.Volume`s or arrays on the same grid; labels likewise. Both images are
    normalised separately (each scan has its own intensity scale) and share one GridTransform (so the
    displacement field relates the same voxels in both). `resolution` (mm) plans the network grid at that spacing
    (`plan_grid_at_resolution`) instead of fitting it to `target_shape`.
    """
    if isinstance(fixed, Volume) and isinstance(moving, Volume):
        check_same_grid(fixed, moving)
    f, affine = _unwrap(fixed)
    m, m_affine = _unwrap(moving)
    if f.ndim != 3 or f.shape != m.shape:
        raise DataError(
            f"fixed and moving must be 3-D on the same grid, got {f.shape} and {m.shape}",
            getattr(moving, "path", None),
        )
    if affine is None:
        affine = m_affine if m_affine is not None else np.eye(4)
    labs = []
    for lab in (fixed_labels, moving_labels):
        if lab is None:
            labs.append(None)
            continue
        arr, _ = _unwrap(lab)
        if arr.shape != f.shape:
            raise DataError(
                f"label map grid {arr.shape} does not match the image grid {f.shape}",
                getattr(lab, "path", None),
            )
        labs.append(arr.astype(np.int16, copy=False))
    fn, mn = normalize_intensity(f), normalize_intensity(m)
    crop = foreground_box(fn, mn) if crop_foreground else None
    if resolution is None:
        transform = plan_grid(f.shape, target_shape, multiple, crop)
    else:
        spacing = np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))
        transform = plan_grid_at_resolution(f.shape, spacing, resolution, multiple, crop)
    return PreparedPair(
        fixed=apply_grid(fn, transform, 1).astype(np.float32),
        moving=apply_grid(mn, transform, 1).astype(np.float32),
        fixed_labels=None if labs[0] is None else apply_grid(labs[0], transform, 0),
        moving_labels=None if labs[1] is None else apply_grid(labs[1], transform, 0),
        affine=transform.affine_out(np.asarray(affine, dtype=np.float64)),
        transform=transform,
    )
