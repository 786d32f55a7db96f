"""Native-resolution registration across anatomies: the teacher (and a spiking model) against ANTs, at 2 mm.

The pairs (`native_pairs.py`): CAT12's template <-> the ICBM152 2009c template, both directions, each anatomy placed
as a subject (its own seeded random affine and smooth deformation), on a 2 mm grid of 96 x 112 x 96, scored on the
fixed image's own label grid (12 subcortical structures). The MNI152 anatomy never
enters the teacher's training (configs/ann_native.toml trains on CAT12's atlases and random label maps). Each model
runs on the whole volume (fully convolutional) through `spikereg-evaluate`'s own code path (by default after its
`--prealign affine` stage, which is also scored alone as "SimpleITK affine"), once on the files as
stored and once on a copy stored in another voxel order. ANTs affine and ANTs SyN run on the same files
(`native_baselines.py`). For a spiking model: one whole pair through the reference engine (wall time, measured) and
Lava's memory estimate against 16 GiB (`--lava` also runs it).

    python benchmarks/bench_registration.py --native --teacher runs/ann_native_qcfs8.pt --snn runs/snn_native_mt.pt
        # -> benchmarks/results/registration_native.json and .png
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import native_baselines
import native_pairs
import numpy as np

from spikereg_deploy import evaluation as ev
from spikereg_deploy.atomic import write_json
from spikereg_deploy.cli.common import load_predictor, load_training_stage
from spikereg_deploy.imaging.sources import open_source

RESOLUTION_MM = 2.0
LAVA_LIMIT = 16 << 30


class _AffineOnly:
    """The zero field: with `--prealign affine` its scores are those of the tool's own affine stage alone."""

    name, kind, tally = "the tool's SimpleITK affine stage alone (zero network field)", "ann", None

    def predict(self, fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
        return np.zeros((3, *fixed.shape), dtype=np.float64)


def _model_rows(predictors: dict[str, Any], root: Path, prealign: bool) -> dict[str, list[dict[str, Any]]]:
    """Every model on every pair of `root` (each pair loaded, and affinely prealigned, once for all models)."""
    multiple = max(p.spec.required_multiple() for p in predictors.values())
    source = open_source(f"l2r:{root}", (0, 0, 0), multiple=multiple, resolution=RESOLUTION_MM, prealign=prealign)
    models = {**predictors, **({"SimpleITK affine": _AffineOnly()} if prealign else {})}
    run = ev.evaluate(source, list(models.values()), progress=False)
    return {name: [{"pair": source.key(i), **row, "seconds": round(run.seconds[k] / len(source), 1)}
                   for i, row in enumerate(run.rows[k])] for k, name in enumerate(models)}


def _baseline_rows(root: Path, method: str) -> list[dict[str, Any]]:
    """Both directions, in the dataset JSON's order (cat12 fixed first), as the model rows are."""
    def files(kind: str, subject: str) -> Path:
        return root / kind / f"NATIVE_{subject}_0000.nii.gz"

    rows = []
    for fixed, moving in (("0001", "0002"), ("0002", "0001")):
        row = native_baselines.register(files("imagesTr", fixed), files("imagesTr", moving),
                                        files("labelsTr", moving), files("labelsTr", fixed), method)
        rows.append({"pair": f"NATIVE_{fixed}_0000<-NATIVE_{moving}_0000", **row})
    return rows


def _spiking_costs(path: str | None, volumes: native_pairs.Volumes, run_lava: bool) -> dict[str, Any]:
    """One whole 96 x 112 x 96 pair (the files' full grid, no crop) of a spiking model: the reference engine's wall
    time (measured); Lava fixed_pt's memory estimate against 16 GiB, whole and in the fewest overlapping tiles that
    fit (`spikereg-simulate --tiles auto`); with `run_lava` the tiled Lava run itself (wall time, peak memory,
    bit-exactness against the tiled reference run, and how far the tiled field is from the whole one)."""
    from spikereg_deploy.cli.pair_tasks import integer_network
    from spikereg_deploy.engine import IntegerNetwork
    from spikereg_deploy.imaging.preprocess import normalize_intensity
    from spikereg_deploy.simulators import tiled
    from spikereg_deploy.simulators.simulation import estimate_memory

    spec, weights, name = integer_network(path)
    image = np.stack([normalize_intensity(volumes[n][0]) for n in ("cat12", "mni09c")])
    shape = tuple(image.shape[1:])
    start = time.perf_counter()
    whole = IntegerNetwork(spec, weights).run(image)
    out: dict[str, Any] = {"model": name, "grid": list(shape), "time_steps": spec.time_steps,
                           "reference_engine_seconds": round(time.perf_counter() - start, 1)}
    estimate = estimate_memory(spec, shape, "lava")
    out["lava_memory_estimate_gib"] = round(estimate / (1 << 30), 2)
    plan = tiled.plan_tiles(spec, shape, "lava", LAVA_LIMIT, "auto")
    out["lava_tiling"] = plan.to_dict() | {"memory_per_tile_gib": round(plan.bytes_per_slab / (1 << 30), 2)}
    out["lava_within_16gib"] = plan.bytes_per_slab <= LAVA_LIMIT
    reference = tiled.simulate_tiled(spec, weights, image, plan, engine="reference", progress=False)
    differs = np.abs(reference.displacement - whole.displacement).max(axis=0)
    out["tiled_vs_whole_field"] = {
        "max_abs_voxels": round(float(differs.max()), 4), "voxels_differing_fraction": float((differs > 0).mean()),
        "note": "tiled reference run against the whole-volume run, network-grid voxels (measured)"}
    if run_lava:
        from spikereg_deploy.simulators.memory_probe import PeakMemory

        with PeakMemory() as peak:
            lava = tiled.simulate_tiled(spec, weights, image, plan, engine="lava", progress=True)
        out["lava_seconds"] = round(lava.wall_time_s, 1)
        out["lava_peak_memory_gib"] = None if peak.added is None else round(peak.added / (1 << 30), 2)
        out["lava_bit_exact_to_tiled_reference"] = bool(
            np.array_equal(lava.displacement, reference.displacement)
            and all(lava.counts[k].to_dict() == c.to_dict() for k, c in reference.counts.items()))
    return out


def _plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(results["methods"])
    pairs = [r["pair"] for r in results["methods"][methods[0]]["as_stored"]]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(methods)
    for k, name in enumerate(methods):
        dice = [r["dice"] for r in results["methods"][name]["as_stored"]]
        ax.bar(np.arange(len(pairs)) + k * width, dice, width, label=name)
    before = results["methods"][methods[0]]["as_stored"][0]["dice_before"]
    dice = [r["dice"] for name in methods for r in results["methods"][name]["as_stored"]]
    ax.set_xticks(np.arange(len(pairs)) + 0.4 - width / 2, [p.replace("NATIVE_", "") for p in pairs])
    ax.set_ylabel("Dice, 12 subcortical labels (measured)")
    ax.set_ylim(min(dice) - 0.01, max(dice) + 0.012)  # the methods differ by 0.01: a 0-based axis would hide it
    ax.legend(fontsize=8, loc="upper center", ncol=len(methods))
    ax.set_title(f"native 2 mm, CAT12 <-> ICBM152 2009c (before registration: Dice {before:.3f})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _targets(results: dict[str, Any]) -> dict[str, Any]:
    m = results["methods"]
    teacher = [r["dice"] for r in m["teacher"]["as_stored"]]
    affine = [r["dice"] for r in m["ANTs affine"]["as_stored"]]
    syn = [r["dice"] for r in m["ANTs SyN"]["as_stored"]]
    out = {"teacher_beats_affine_both_directions": all(t > a for t, a in zip(teacher, affine, strict=True)),
           "teacher_within_0.01_of_syn_both_directions": all(t >= s - 0.01 for t, s in zip(teacher, syn,
                                                                                          strict=True)),
           "teacher_minus_syn": [round(t - s, 4) for t, s in zip(teacher, syn, strict=True)],
           "teacher_percent_jacobian_nonpositive": [100 * r["fraction_jacobian_nonpositive"]
                                                    for r in m["teacher"]["as_stored"]],
           "orientation_dice_difference": {name: [abs(a["dice"] - b["dice"]) for a, b in
                                                  zip(v["as_stored"], v["permuted"], strict=True)]
                                           for name, v in m.items() if "permuted" in v}}
    out["teacher_folds_below_0.1_percent"] = all(p < 0.1 for p in out["teacher_percent_jacobian_nonpositive"])
    out["orientation_within_0.002"] = all(d <= 0.002 for ds in out["orientation_dice_difference"].values()
                                          for d in ds)
    if "snn" in m:
        gap = [t - r["dice"] for t, r in zip(teacher, m["snn"]["as_stored"], strict=True)]
        out["snn_within_0.01_of_teacher"] = all(g <= 0.01 for g in gap)
        out["teacher_minus_snn"] = [round(g, 4) for g in gap]
    costs = results.get("spiking_costs")
    if costs:
        out["reference_under_60_s"] = costs["reference_engine_seconds"] < 60
        out["lava_within_16gib"] = costs["lava_within_16gib"] and (costs.get("lava_peak_memory_gib") or 0) <= 16 \
            and costs.get("lava_bit_exact_to_tiled_reference", True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher", default="runs/ann_native.pt")
    parser.add_argument("--snn", help="a spiking checkpoint converted from the teacher")
    parser.add_argument("--lava", action="store_true", help="also run the spiking model's pair in Lava")
    parser.add_argument("--unperturbed", action="store_true",
                        help="the templates as they are, both in MNI space, without the subject placement")
    parser.add_argument("--prealign", choices=("none", "affine"), default="affine",
                        help="the models' affine stage (spikereg-evaluate --prealign); ANTs runs its own either way")
    parser.add_argument("--json", default="benchmarks/results/registration_native.json")
    args = parser.parse_args(argv)
    load_training_stage()
    with tempfile.TemporaryDirectory(prefix="spikereg-native-") as tmp:
        volumes = native_pairs.anatomies(perturb=not args.unperturbed)  # built once: about 25 s
        roots = {"as_stored": native_pairs.write_dataset(Path(tmp) / "as_stored", volumes),
                 "permuted": native_pairs.write_dataset(Path(tmp) / "permuted", volumes, permuted=True)}
        models = {"teacher": args.teacher, **({"snn": args.snn} if args.snn else {})}
        predictors = {name: load_predictor(path) for name, path in models.items()}
        rows = {layout: _model_rows(predictors, r, args.prealign == "affine") for layout, r in roots.items()}
        methods: dict[str, dict[str, Any]] = {
            name: {"model": getattr(predictors.get(name), "name", _AffineOnly.name),
                   **{layout: rows[layout][name] for layout in roots}} for name in rows["as_stored"]}
        for label, method in native_baselines.METHODS:
            methods[label] = {"model": f"antspyx {method}", "as_stored": _baseline_rows(roots["as_stored"], method)}
        results: dict[str, Any] = {
            "what": "cross-anatomy registration at native 2 mm (CAT12 template <-> ICBM152 2009c, "
                    + ("both as stored in MNI space" if args.unperturbed else "each placed as a subject by a "
                       "seeded random affine + smooth deformation")
                    + ", 12 subcortical labels), Dice on the fixed label grid; every number measured on this "
                    "machine",
            "subject_placement": not args.unperturbed,
            "prealign": args.prealign if args.prealign == "none" else
            "affine: the tool's SimpleITK stage (spikereg-evaluate --prealign affine) before each model",
            "grid": {"shape": list(native_pairs.GRID_SHAPE), "spacing_mm": native_pairs.GRID_SPACING},
            "held_out_anatomy": "mni09c (ICBM152 2009c): never in training; cat12's atlases are",
            "methods": methods, "machine": platform.processor() or platform.machine()}
        results["spiking_costs"] = _spiking_costs(args.snn, volumes, args.lava)  # without --snn: the embedded default
    results["targets"] = _targets(results)
    write_json(args.json, results, null_non_finite=True)
    _plot(results, Path(args.json).with_suffix(".png"))
    for name, v in methods.items():
        print(f"{name:<12} " + "  ".join(f"{r['pair']}: Dice {r['dice']:.4f} (before {r['dice_before']:.4f}), "
                                         f"%J<=0 {100 * r['fraction_jacobian_nonpositive']:.3f}"
                                         for r in v["as_stored"]) + " (measured)")
    print(f"targets: {results['targets']}")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
