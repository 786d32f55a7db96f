"""Registration metrics with the Learn2Reg OASIS conventions, and the textbook variants beside them.

Displacements are (3, D, H, W) in voxels with warped(x) = moving(x + disp(x)) (see `warp`). Label maps are
integer arrays with 0 as background. Learn2Reg reference: MDL-UzL/L2R, `evaluation/evaluation.py` and
`evaluation/utils.py` (functions `jacobian_determinant`, `compute_dice`, `compute_hd95`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "label_list",
    "dice_per_label",
    "mean_dice",
    "hd95_per_label",
    "hd95",
    "jacobian_determinant",
    "sdlogj_learn2reg",
    "sdlogj_textbook",
    "fraction_nonpositive_jacobian",
    "count_nonpositive_jacobian",
]


def label_list(fixed: np.ndarray, labels: Sequence[int] | None = None) -> np.ndarray:
    """The labels scored (unitless ids): `labels` if given, else those present in `fixed` except 0, sorted."""
    if labels is not None:
        return np.asarray(list(labels), dtype=np.int64)
    present = np.unique(np.asarray(fixed))
    return present[present != 0].astype(np.int64)


def _check_labels(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"label maps differ in shape: {a.shape} vs {b.shape}")
    return a, b


def dice_per_label(
    a: np.ndarray, b: np.ndarray, labels: Sequence[int] | None = None, moving: np.ndarray | None = None
) -> np.ndarray:
    """Dice overlap (unitless, 0..1) per label of fixed map `a` vs warped map `b`, in `label_list(a, labels)`
    order.

    Learn2Reg convention: labels are those of the fixed map (0 excluded); a label absent from both maps is
    NaN, and the aggregate is `np.nanmean` (see `mean_dice`). Learn2Reg's official `compute_dice` also gives
    NaN when the label is absent from the *unwarped* moving map: pass that map as `moving` to reproduce it
    exactly.
    """
    a, b = _check_labels(a, b)
    out = []
    for lab in label_list(a, labels):
        in_a, in_b = a == lab, b == lab
        na, nb = int(in_a.sum()), int(in_b.sum())
        if (na == 0 and nb == 0) or (
            moving is not None and (na == 0 or not np.any(np.asarray(moving) == lab))
        ):
            out.append(np.nan)
        else:
            out.append(2.0 * int(np.logical_and(in_a, in_b).sum()) / (na + nb))
    return np.asarray(out, dtype=np.float64)


def mean_dice(
    a: np.ndarray, b: np.ndarray, labels: Sequence[int] | None = None, moving: np.ndarray | None = None
) -> float:
    """Mean Dice (unitless) over labels, NaNs skipped (Learn2Reg's nanmean); NaN if no label is scored."""
    scores = dice_per_label(a, b, labels, moving)
    return float(np.nanmean(scores)) if np.any(np.isfinite(scores)) else float("nan")


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of `mask` with a 6-neighbour outside it (the volume's edge counts as outside)."""
    inner = ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(3, 1), border_value=0)
    return mask & ~inner


def _directed_distances(src: np.ndarray, dst: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Distance (spacing units) from each surface voxel of `src` to the nearest surface voxel of `dst`."""
    dist = ndimage.distance_transform_edt(~dst, sampling=spacing)
    return dist[src]


def hd95_per_label(
    a: np.ndarray,
    b: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    labels: Sequence[int] | None = None,
    moving: np.ndarray | None = None,
) -> np.ndarray:
    """95th-percentile Hausdorff distance per label, in the units of `spacing` (mm for NIfTI zooms; voxels at
    1).

    Surfaces are the boundary voxels of each label; for each direction (a->b, b->a) the 95th percentile of the
    distances from one surface to the other (Euclidean distance transform) is taken, and the larger of the two
    is reported, as DeepMind's `compute_robust_hausdorff` used by Learn2Reg does (without its surfel-area
    weighting, so values can differ from the official ones by a fraction of a voxel). NaN where a label is
    missing from either map (and, if `moving` is given, from the unwarped moving map, as Learn2Reg does).
    """
    a, b = _check_labels(a, b)
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != a.ndim:
        raise ValueError(f"spacing needs {a.ndim} values, got {len(spacing)}")
    out = []
    for lab in label_list(a, labels):
        in_a, in_b = a == lab, b == lab
        missing_moving = moving is not None and not np.any(np.asarray(moving) == lab)
        if not in_a.any() or not in_b.any() or missing_moving:
            out.append(np.nan)
            continue
        sa, sb = _surface(in_a), _surface(in_b)
        d_ab = _directed_distances(sa, sb, spacing)
        d_ba = _directed_distances(sb, sa, spacing)
        out.append(max(float(np.percentile(d_ab, 95)), float(np.percentile(d_ba, 95))))
    return np.asarray(out, dtype=np.float64)


def hd95(
    a: np.ndarray,
    b: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    labels: Sequence[int] | None = None,
    moving: np.ndarray | None = None,
) -> float:
    """Mean (nanmean) of `hd95_per_label`, in the units of `spacing`; NaN if no label is scored."""
    scores = hd95_per_label(a, b, spacing, labels, moving)
    return float(np.nanmean(scores)) if np.any(np.isfinite(scores)) else float("nan")


def _check_disp(disp: np.ndarray) -> np.ndarray:
    disp = np.asarray(disp, dtype=np.float64)
    if disp.ndim != 4 or disp.shape[0] != 3:
        raise ValueError(f"displacement must have shape (3, D, H, W), got {disp.shape}")
    if min(disp.shape[1:]) < 2:
        raise ValueError(f"displacement grid {disp.shape[1:]} too small for finite differences")
    return disp


def _det3(j: np.ndarray) -> np.ndarray:
    """Determinant of a (3, 3, ...) stack of matrices, expanded explicitly (fast and exact for 3x3)."""
    return (
        j[0, 0] * (j[1, 1] * j[2, 2] - j[1, 2] * j[2, 1])
        - j[0, 1] * (j[1, 0] * j[2, 2] - j[1, 2] * j[2, 0])
        + j[0, 2] * (j[1, 0] * j[2, 1] - j[1, 1] * j[2, 0])
    )


def jacobian_determinant(disp: np.ndarray) -> np.ndarray:
    """det of the Jacobian of phi(x) = x + disp(x) per voxel (unitless volume ratio; disp in voxels), (D, H,
    W).

    Central differences inside, one-sided at the borders (np.gradient), so every voxel gets a value.
    det <= 0 marks folding; 1 is volume-preserving.
    """
    disp = _check_disp(disp)
    jac = np.empty((3, 3, *disp.shape[1:]))
    for i in range(3):
        grads = np.gradient(disp[i])
        for j in range(3):
            jac[i, j] = grads[j] + (1.0 if i == j else 0.0)
    return _det3(jac)


def _jacobian_determinant_learn2reg(disp: np.ndarray) -> np.ndarray:
    """Learn2Reg's `jacobian_determinant`: [-0.5, 0, 0.5] correlation with zero padding, 2 voxels cropped per
    side.

    Inside the crop this equals central differences; the crop drops the zero-padded border.
    """
    disp = _check_disp(disp)
    kernel = np.array([-0.5, 0.0, 0.5])
    jac = np.empty((3, 3, *disp.shape[1:]))
    for axis in range(3):
        shape = [1, 1, 1]
        shape[axis] = 3
        for comp in range(3):
            jac[axis, comp] = ndimage.correlate(disp[comp], kernel.reshape(shape), mode="constant", cval=0.0)
    jac += np.eye(3).reshape(3, 3, 1, 1, 1)
    return _det3(jac[:, :, 2:-2, 2:-2, 2:-2])


def sdlogj_learn2reg(disp: np.ndarray) -> float:
    """SDlogJ exactly as Learn2Reg's official evaluation computes it (unitless; disp in voxels).

    Mirrors MDL-UzL/L2R `evaluation/evaluation.py`: `jac_det = (jacobian_determinant(disp) + 3).clip(1e-9,
    1e9)`, then `np.log(jac_det).std()`, with `utils.jacobian_determinant` (zero-padded central differences,
    2-voxel border cropped). The +3 shift keeps folded voxels (det down to -3) finite but compresses the
    spread, so the number is smaller than `sdlogj_textbook` and the two must not be compared with each other.
    """
    det = _jacobian_determinant_learn2reg(disp)
    return float(np.log(np.clip(det + 3.0, 1e-9, 1e9)).std())


def sdlogj_textbook(disp: np.ndarray) -> float:
    """Standard deviation of log det J over the voxels with det > 0 (unitless); NaN if none has det > 0."""
    det = jacobian_determinant(disp)
    pos = det[det > 0]
    return float(np.log(pos).std()) if pos.size else float("nan")


def count_nonpositive_jacobian(disp: np.ndarray) -> int:
    """Number of voxels (count) with det J <= 0, over the whole grid (`jacobian_determinant`).

    Learn2Reg's script counts `jac_det <= 0` after its +3 shift and clip, which can never be true; this counts
    the unshifted determinant, which is what the reported 'folding' means.
    """
    return int(np.count_nonzero(jacobian_determinant(disp) <= 0))


def fraction_nonpositive_jacobian(disp: np.ndarray) -> float:
    """Fraction (0..1, multiply by 100 for %J<=0) of voxels with det J <= 0 over the whole grid."""
    det = jacobian_determinant(disp)
    return float(np.count_nonzero(det <= 0) / det.size)
