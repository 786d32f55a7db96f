"""Registration evaluation: per-pair metrics, Learn2Reg-style aggregates, paired model comparison, a figure."""
from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterable, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import atomic_file
from .errors import SpikeRegError
from .imaging.pairs import RegistrationPair
from .imaging.warp import warp_image, warp_labels
from .metrics import (
    count_nonpositive_jacobian,
    dice_per_label,
    fraction_nonpositive_jacobian,
    hd95,
    sdlogj_learn2reg,
    sdlogj_textbook,
)

if TYPE_CHECKING:
    from .predict import Predictor

METRICS = ("dice", "hd95", "sdlogj_learn2reg", "sdlogj_textbook", "fraction_jacobian_nonpositive", "mask_dice")
SCORED_ON_NATIVE = "the fixed image's native label grid (displacement resampled there, labels warped by nearest)"
SCORED_ON_NETWORK = "the network grid (embedded and cross pairs are generated on it)"
UNITS = {
    "dice": "mean Dice over labels present (nanmean, Learn2Reg convention), 0..1, on `scored_on` (measured)",
    "dice_before": "Dice of the unregistered pair, on `scored_on` (measured)",
    "hd95": "95th-percentile Hausdorff distance, mean over labels, mm of the grid in `scored_on` (measured)",
    "mask_dice": "Dice of the brain masks (Learn2Reg masksTr/) after registration, on `scored_on` (measured)",
    "scored_on": "the grid Dice, HD95 and mask Dice are computed on; Jacobian metrics are of the network-grid field",
    "sdlogj_learn2reg": "std of log Jacobian determinant as Learn2Reg's evaluation code computes it (+3, clip)",
    "sdlogj_textbook": "std of log Jacobian determinant over voxels with det > 0",
    "fraction_jacobian_nonpositive": "fraction of voxels with det J <= 0 (measured)",
    "count_jacobian_nonpositive": "voxels with det J <= 0 (measured)",
}


def _scoring_grid(pair: RegistrationPair, disp: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, ...], Any, Any]:
    """(fixed labels, moving labels, displacement in that grid's voxels, spacing mm, fixed mask, moving mask).

    A pair read from files is scored on the fixed image's own label grid, the grid its labels were drawn on:
    resampled labels would score a different, blurred segmentation. Synthetic pairs only exist on the network grid.
    """
    native = pair.native
    if native is not None and pair.transform is not None and native.fixed_labels is not None \
            and native.moving_labels is not None:
        from .imaging.native import native_displacement

        return (native.fixed_labels, native.moving_labels, native_displacement(disp, pair.transform, native.prealign),
                native.spacing, native.fixed_mask, native.moving_mask)
    if pair.fixed_labels is None or pair.moving_labels is None:
        raise SpikeRegError(f"pair {pair.name} has no label maps: Dice needs them")
    spacing = tuple(float(s) for s in np.sqrt((pair.affine[:3, :3] ** 2).sum(axis=0)))
    return pair.fixed_labels, pair.moving_labels, disp, spacing, None, None


def pair_metrics(pair: RegistrationPair, disp: np.ndarray) -> dict[str, Any]:
    """All metrics of one registered pair (labels required): overlap on `scored_on`, regularity of `disp`."""
    if pair.fixed_labels is None or pair.moving_labels is None:
        raise SpikeRegError(f"pair {pair.name} has no label maps: Dice needs them")
    fixed_labels, moving_labels, grid_disp, spacing, fixed_mask, moving_mask = _scoring_grid(pair, disp)
    warped = warp_labels(moving_labels, grid_disp)
    row: dict[str, Any] = {}
    if fixed_mask is not None and moving_mask is not None:  # a key only when there are masks: JSON has no NaN
        row["mask_dice"] = float(dice_per_label(fixed_mask != 0, warp_labels(moving_mask, grid_disp) != 0,
                                                labels=[1])[0])
    return {
        "scored_on": "network grid" if grid_disp is disp else "native fixed label grid",
        "dice": float(np.nanmean(dice_per_label(fixed_labels, warped, moving=moving_labels))),
        "dice_before": float(np.nanmean(dice_per_label(fixed_labels, moving_labels))),
        "hd95": float(hd95(fixed_labels, warped, spacing)),
        "sdlogj_learn2reg": float(sdlogj_learn2reg(disp)),
        "sdlogj_textbook": float(sdlogj_textbook(disp)),
        "fraction_jacobian_nonpositive": float(fraction_nonpositive_jacobian(disp)),
        "count_jacobian_nonpositive": int(count_nonpositive_jacobian(disp)),
    } | row


def aggregate(rows: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean, std and the 30th/70th percentiles Learn2Reg reports beside the mean (robustness)."""
    out = {}
    for key in (*METRICS, "dice_before"):
        values = np.array([r.get(key, np.nan) for r in rows], dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        out[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
                    "p30": float(np.percentile(values, 30)), "p70": float(np.percentile(values, 70)),
                    "n": int(values.size)}
    return out


def paired_comparison(a: Sequence[dict[str, float]], b: Sequence[dict[str, float]], metric: str = "dice"
                      ) -> dict[str, Any]:
    """Mean difference a - b over the same pairs, with a paired t-test and a Wilcoxon signed-rank p-value."""
    from scipy import stats

    x = np.array([r[metric] for r in a], dtype=np.float64)
    y = np.array([r[metric] for r in b], dtype=np.float64)
    if x.shape != y.shape or x.size < 2:
        raise SpikeRegError("a paired comparison needs the same pairs (at least 2) for both models")
    diff = x - y
    t = stats.ttest_rel(x, y)
    try:
        w = stats.wilcoxon(x, y).pvalue if np.any(diff != 0) else 1.0
    except ValueError:
        w = float("nan")
    return {"metric": metric, "mean_difference": float(diff.mean()), "std_difference": float(diff.std(ddof=1)),
            "paired_t_p": float(t.pvalue) if np.isfinite(t.pvalue) else 1.0, "wilcoxon_p": float(w),
            "n_pairs": int(x.size)}


@dataclass
class Evaluation:
    """Metrics of one or more models on the same pairs, each pair built once and seen by every model."""

    rows: list[list[dict[str, Any]]]  # per model, per pair: {"pair": name, metric: value, ...}
    seconds: list[float]  # per model: prediction + metrics, wall clock (measured)
    first_pair: RegistrationPair | None = None  # kept with each model's displacement of it, for `plot_pair`
    first_fields: list[np.ndarray] = field(default_factory=list)


def evaluate(pairs: Iterable[RegistrationPair], predictors: Sequence[Predictor], progress: bool = True
             ) -> Evaluation:
    """Run every predictor on every pair; `pairs` may be a lazy source, only one pair is held at a time."""
    result = Evaluation([[] for _ in predictors], [0.0] * len(predictors))
    iterator: Any = pairs
    if progress:
        from tqdm import tqdm

        iterator = tqdm(pairs, desc="evaluate", unit="pair", total=len(pairs) if isinstance(pairs, Sized) else None)
    for pair in iterator:
        first = result.first_pair is None
        for i, predictor in enumerate(predictors):
            started = time.perf_counter()
            disp = predictor.predict(pair.fixed, pair.moving)
            result.rows[i].append({"pair": pair.name, **pair_metrics(pair, disp)})
            result.seconds[i] += time.perf_counter() - started
            if first:
                result.first_fields.append(disp)
        if first:
            result.first_pair = pair
    return result


def rows_to_csv(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    fields = list(dict.fromkeys(key for row in rows for key in row))  # mask_dice only where a pair had masks
    writer = csv.DictWriter(buf, fieldnames=fields, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def plot_pair(pair: RegistrationPair, disp: np.ndarray, path: Path, title: str) -> None:
    """Middle slices of the network grid, one row per anatomical plane (named from the affine: for RAS data array
    axis 0 is sagittal, 1 coronal, 2 axial): fixed, moving, warped, |displacement| and the label overlay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .imaging.orientation import slice_plane

    warped = warp_image(pair.moving, disp)
    mag = np.sqrt((disp ** 2).sum(axis=0))
    has_labels = pair.fixed_labels is not None and pair.moving_labels is not None
    warped_labels = warp_labels(pair.moving_labels, disp) if has_labels else None
    fig, rows = plt.subplots(3, 5, figsize=(15, 10))
    for axis, axes in enumerate(rows):
        index = pair.fixed.shape[axis] // 2

        def cut(volume: np.ndarray, axis: int = axis, index: int = index) -> np.ndarray:
            return np.rot90(np.take(volume, index, axis=axis))  # rot90: superior / anterior up for RAS data

        plane = f"{slice_plane(pair.affine, axis)} (axis {axis})"
        for ax, (img, name) in zip(axes, [(pair.fixed, "fixed"), (pair.moving, "moving"), (warped, "warped moving")],
                                   strict=False):
            ax.imshow(cut(img), cmap="gray")
            ax.set_title(f"{name}, {plane}")
        im = axes[3].imshow(cut(mag), cmap="magma")
        axes[3].set_title("|displacement| (network voxels)")
        fig.colorbar(im, ax=axes[3], fraction=0.046)
        axes[4].imshow(cut(pair.fixed), cmap="gray")
        if warped_labels is not None:
            fixed_cut, warped_cut = cut(pair.fixed_labels), cut(warped_labels)
            axes[4].contour(fixed_cut, levels=np.arange(0.5, pair.fixed_labels.max() + 1), colors="lime",
                            linewidths=0.6)
            axes[4].contour(warped_cut, levels=np.arange(0.5, warped_labels.max() + 1), colors="red", linewidths=0.6)
        axes[4].set_title("labels: fixed (green), warped (red)")
        for ax in axes:
            ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_file(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
