"""What `spikereg-run` reports about a whole-chain run: registration quality, counts, ratios, cores, one Loihi figure.

Every number is taken from the documents the stages wrote (simulation report, energy report, mapping), never
recomputed, so the summary cannot disagree with the files beside it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .energy.loihi import describe_total


def evaluate_registration(pair: Any, displacement_path: str | Path) -> dict[str, float]:
    """Dice before/after and the folding fraction of the displacement file written for `pair` (labels 1-3)."""
    import nibabel as nib

    from .imaging.native import mm_to_voxels
    from .imaging.warp import warp_labels
    from .metrics import dice_per_label, fraction_nonpositive_jacobian

    field = nib.load(str(displacement_path))  # world mm (docs/output-formats.md); the embedded pair's own grid
    disp = mm_to_voxels(np.asarray(field.dataobj), field.affine)
    before = dice_per_label(pair.fixed_labels, pair.moving_labels)
    after = dice_per_label(pair.fixed_labels, warp_labels(pair.moving_labels, disp))
    return {"dice_before": float(np.nanmean(before)), "dice_after": float(np.nanmean(after)),
            "fraction_jacobian_nonpositive": float(fraction_nonpositive_jacobian(disp))}


def build_summary(report: dict[str, Any], energy: dict[str, Any], mapping: dict[str, Any],
                  evaluation: dict[str, float], wall_time_s: float) -> dict[str, Any]:
    """summary.json: the figures the printed summary shows, each copied from the stage document it comes from."""
    variants = {v["name"]: v for v in energy["ratio_variants"]}
    loihi = energy["loihi"]
    return {
        "evaluation": evaluation,
        "spike_rate": report["totals"]["spike_rate"],
        "mean_layer_spike_rate": report["totals"]["mean_layer_spike_rate"],
        "synops_measured": energy["proxy_45nm"]["snn_synops_measured"],
        "graded_synops_measured": energy["proxy_45nm"]["snn_graded_synops_measured"],
        "ratio_fp32_graded_bound": energy["proxy_45nm"]["ratio_fp32_graded_bound"],
        "ann_macs": energy["proxy_45nm"]["ann_macs"],
        "ratio_variants": {k: {"ratio": v["ratio"], "how": v["how"], "formula": v["formula"]}
                           for k, v in variants.items()},
        "cores": mapping.get("cores_used"),
        "chips": mapping.get("chips_used"),
        "lower_bound_cores": mapping.get("lower_bound_cores"),
        "loihi_energy": {"total_uJ": loihi["total_uJ"], "how": "projected", "cost_model": loihi["cost_model"],
                         "profile": loihi["profile"], "text": describe_total(loihi)},
        "engine": report["engine"], "time_steps": report["time_steps"], "input_shape": report["input_shape"],
        "wall_time_s": round(wall_time_s, 1),
        "model": (report.get("meta") or {}).get("net"),
    }


def format_summary(s: dict[str, Any]) -> str:
    ev = s["evaluation"]
    lines = [
        f"spikereg-run summary ({s['engine']}, T={s['time_steps']}, input {'x'.join(map(str, s['input_shape']))}, "
        f"{s['wall_time_s']} s wall, measured)",
        f"  Dice before / after registration: {ev['dice_before']:.4f} / {ev['dice_after']:.4f} (measured, labels "
        f"1-3 of the embedded pair); J<=0: {100 * ev['fraction_jacobian_nonpositive']:.3f} % of voxels",
        f"  spike rate: {100 * s['spike_rate']:.2f} % of neurons per step (measured; unweighted layer mean "
        f"{100 * s['mean_layer_spike_rate']:.2f} %)",
        f"  SynOps measured: {s['synops_measured']:,} events"
        + (f" + {s['graded_synops_measured']:,} graded synaptic events (weight x payload MACs, measured)"
           if s.get("graded_synops_measured") else "")
        + f" vs ANN MACs (exact): {s['ann_macs']:,} per inference",
    ]
    for name, v in s["ratio_variants"].items():
        if v["ratio"] is not None:
            lines.append(f"  energy ratio ANN/SNN {v['ratio']:.2f}x [{v['how']}, {name}]: {v['formula']}")
    if s.get("graded_synops_measured"):
        lines.append(f"  energy ratio ANN/SNN {s['ratio_fp32_graded_bound']:.2f}x [measured, graded events as fp32 "
                     "MACs]: the upper bound of their cost (45 nm proxy)")
    lines.append(f"  Loihi mapping: {s['cores']} cores on {s['chips']} chip(s) (planned; lower bound "
                 f"{s['lower_bound_cores']} cores)")
    lines.append(f"  Loihi energy: {s['loihi_energy']['text']}")
    lines.append(f"  model: {s['model']}")
    return "\n".join(lines)
