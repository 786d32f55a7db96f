"""Native-resolution registration across anatomies: the teacher (and a spiking model) against ANTs, at 2 mm.

The pairs (`native_pairs.py`): CAT12's template <-> the ICBM152 2009c template, both directions, each anatomy placed
as a subject (its own seeded random affine and smooth deformation), on a 2 mm grid of 96 x 112 x 96, scored on the
fixed image's own label grid (12 subcortical structures). The MNI152 anatomy never
enters the teacher's training (configs/ann_native.toml trains on CAT12's atlases and random label maps). Each model
runs on the whole volume (fully convolutional) through `spikereg-evaluate`'s own code path, once on the files as
stored and once on a copy stored in another voxel order. ANTs affine and ANTs SyN run on the same files
(`native_baselines.py`). For a spiking model: one whole pair through the reference engine (wall time, measured) and
Lava's memory estimate against 16 GiB (`--lava` also runs it).

    python benchmarks/bench_registration.py --native --teacher runs/ann_native.pt [--snn runs/snn_native.pt]
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


def _model_rows(predictor: Any, root: Path) -> list[dict[str, Any]]:
    source = open_source(f"l2r:{root}", (0, 0, 0), multiple=predictor.spec.required_multiple(),
                         resolution=RESOLUTION_MM)
    run = ev.evaluate(source, [predictor], progress=False)
    return [{"pair": source.key(i), **row, "seconds": round(run.seconds[0] / len(source), 1)}
            for i, row in enumerate(run.rows[0])]


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
    time (measured); Lava fixed_pt's memory estimate against 16 GiB (and, with `run_lava`, the run itself)."""
    from spikereg_deploy.cli.pair_tasks import integer_network
    from spikereg_deploy.engine import IntegerNetwork
    from spikereg_deploy.imaging.preprocess import normalize_intensity
    from spikereg_deploy.simulators.simulation import estimate_memory

    spec, weights, name = integer_network(path)
    image = np.stack([normalize_intensity(volumes[n][0]) for n in ("cat12", "mni09c")])
    start = time.perf_counter()
    IntegerNetwork(spec, weights).run(image)
    out: dict[str, Any] = {"model": name, "grid": list(image.shape[1:]), "time_steps": spec.time_steps,
                           "reference_engine_seconds": round(time.perf_counter() - start, 1)}
    estimate = estimate_memory(spec, tuple(image.shape[1:]), "lava")
    out["lava_memory_estimate_gib"] = round(estimate / (1 << 30), 2)
    out["lava_within_16gib"] = estimate <= LAVA_LIMIT
    if run_lava and estimate <= LAVA_LIMIT:
        from spikereg_deploy.simulators.lava_builder import run_lava as lava

        start = time.perf_counter()
        lava(spec, weights, image, progress=False)
        out["lava_seconds"] = round(time.perf_counter() - start, 1)
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
    before = [r["dice_before"] for r in results["methods"][methods[0]]["as_stored"]]
    ax.scatter(np.arange(len(pairs)) + 0.4 - width / 2, before, color="k", marker="_", s=400, label="before")
    ax.set_xticks(np.arange(len(pairs)) + 0.4 - width / 2, [p.replace("NATIVE_", "") for p in pairs])
    ax.set_ylabel("Dice, 12 subcortical labels (measured)")
    ax.set_ylim(min(before) - 0.1, 1.0)
    ax.legend(fontsize=8)
    ax.set_title("native 2 mm, CAT12 <-> ICBM152 2009c")
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
        out["lava_within_16gib"] = costs["lava_within_16gib"]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher", default="runs/ann_native.pt")
    parser.add_argument("--snn", help="a spiking checkpoint converted from the teacher")
    parser.add_argument("--lava", action="store_true", help="also run the spiking model's pair in Lava")
    parser.add_argument("--unperturbed", action="store_true",
                        help="the templates as they are, both in MNI space, without the subject placement")
    parser.add_argument("--json", default="benchmarks/results/registration_native.json")
    args = parser.parse_args(argv)
    load_training_stage()
    with tempfile.TemporaryDirectory(prefix="spikereg-native-") as tmp:
        volumes = native_pairs.anatomies(perturb=not args.unperturbed)  # built once: about 25 s
        roots = {"as_stored": native_pairs.write_dataset(Path(tmp) / "as_stored", volumes),
                 "permuted": native_pairs.write_dataset(Path(tmp) / "permuted", volumes, permuted=True)}
        methods: dict[str, dict[str, Any]] = {}
        models = {"teacher": args.teacher, **({"snn": args.snn} if args.snn else {})}
        for name, path in models.items():
            predictor = load_predictor(path)
            methods[name] = {"model": predictor.name, **{k: _model_rows(predictor, r) for k, r in roots.items()}}
        for label, method in native_baselines.METHODS:
            methods[label] = {"model": f"antspyx {method}", "as_stored": _baseline_rows(roots["as_stored"], method)}
        results: dict[str, Any] = {
            "what": "cross-anatomy registration at native 2 mm (CAT12 template <-> ICBM152 2009c, "
                    + ("both as stored in MNI space" if args.unperturbed else "each placed as a subject by a "
                       "seeded random affine + smooth deformation")
                    + ", 12 subcortical labels), Dice on the fixed label grid; every number measured on this "
                    "machine",
            "subject_placement": not args.unperturbed,
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
