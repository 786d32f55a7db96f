"""`spikereg-run -o OUTDIR`: the whole chain on the embedded model and an embedded pair, with a short summary.

export -> Lava simulation with event counting -> mapping (with the measured traffic) -> energy report -> evaluation.
Each stage is the same command a user would run by hand; this only strings them together into one folder.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from spikereg_deploy.atomic import atomic_file
from spikereg_deploy.errors import SpikeRegError, cli_entry


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikereg-run",
        description="Run the embedded spiking U-Net on an embedded pair through export, Lava simulation, mapping, "
                    "energy and evaluation, and print a summary.",
    )
    parser.add_argument("-o", "--output", default="out/run", help="output folder (default out/run)")
    parser.add_argument("--checkpoint", help="model checkpoint (default: the embedded default model)")
    parser.add_argument("--engine", choices=("lava", "reference"), default="lava")
    parser.add_argument("--profile", default="loihi2")
    parser.add_argument("--size", type=int, default=32, help="cubic volume size (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the embedded pair")
    return parser


def _stage(name: str, func, argv: list[str]) -> None:
    started = time.perf_counter()
    print(f"== {name}: {' '.join(argv)}", file=sys.stderr)
    code = func(argv)
    if code != 0:
        raise SpikeRegError(f"stage {name} failed (exit {code})")
    print(f"== {name} done in {time.perf_counter() - started:.1f} s", file=sys.stderr)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from . import energy_cli, export_cli, map_cli, simulate_cli

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    net = out / "model.net"
    size = [str(args.size)] * 3
    started = time.perf_counter()
    _stage("export", export_cli.main, ([args.checkpoint] if args.checkpoint else []) + ["-o", str(net),
                                                                                       "--input-shape", *size])
    _stage("simulate", simulate_cli.main, [str(net), "-o", str(out / "simulation"), "--engine", args.engine,
                                           "--input-shape", *size, "--seed", str(args.seed)])
    _stage("map", map_cli.main, [str(net), "--profile", args.profile, "--traffic",
                                 str(out / "simulation" / "report.json"), "--input-shape", *size,
                                 "-o", str(out / "mapping" / "mapping.json")])
    _stage("energy", energy_cli.main, [str(out / "simulation" / "report.json"), "--net", str(net),
                                       "--mapping", str(out / "mapping" / "mapping.json"), "--profile",
                                       args.profile, "-o", str(out / "energy")])
    evaluation = _evaluate(out, args.size, args.seed)
    summary = _summary(out, evaluation, time.perf_counter() - started)
    with atomic_file(out / "summary.json", suffix=".json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    print(format_summary(summary))
    return 0


def _evaluate(out: Path, size: int, seed: int) -> dict:
    """Dice and Jacobian figures of the simulated displacement on the embedded pair's labels."""
    import nibabel as nib

    from spikereg_deploy.imaging.synthetic import embedded_pairs
    from spikereg_deploy.imaging.warp import warp_labels
    from spikereg_deploy.metrics import dice_per_label, fraction_nonpositive_jacobian

    pair = embedded_pairs(1, shape=(size, size, size), seed=seed)[0]
    disp = np.moveaxis(np.asarray(nib.load(str(out / "simulation" / "displacement.nii.gz")).dataobj), -1, 0)
    before = dice_per_label(pair.fixed_labels, pair.moving_labels)
    after = dice_per_label(pair.fixed_labels, warp_labels(pair.moving_labels, disp))
    return {"dice_before": float(np.nanmean(before)), "dice_after": float(np.nanmean(after)),
            "fraction_jacobian_nonpositive": float(fraction_nonpositive_jacobian(disp))}


def _summary(out: Path, evaluation: dict, wall: float) -> dict:
    report = json.loads((out / "simulation" / "report.json").read_text())
    energy = json.loads((out / "energy" / "energy.json").read_text())
    mapping = json.loads((out / "mapping" / "mapping.json").read_text())
    variants = {v["name"]: v for v in energy["ratio_variants"]}
    return {
        "evaluation": evaluation,
        "spike_rate": report["totals"]["spike_rate"],
        "mean_layer_spike_rate": report["totals"]["mean_layer_spike_rate"],
        "synops_measured": energy["proxy_45nm"]["snn_synops_measured"],
        "ann_macs": energy["proxy_45nm"]["ann_macs"],
        "ratio_variants": {k: {"ratio": v["ratio"], "how": v["how"], "formula": v["formula"]}
                           for k, v in variants.items()},
        "cores": mapping.get("cores_used"),
        "chips": mapping.get("chips_used"),
        "lower_bound_cores": mapping.get("lower_bound_cores"),
        "engine": report["engine"], "time_steps": report["time_steps"], "input_shape": report["input_shape"],
        "wall_time_s": round(wall, 1),
        "model": (report.get("meta") or {}).get("net"),
    }


def format_summary(s: dict) -> str:
    ev = s["evaluation"]
    lines = [
        f"spikereg-run summary ({s['engine']}, T={s['time_steps']}, input {'x'.join(map(str, s['input_shape']))}, "
        f"{s['wall_time_s']} s wall, measured)",
        f"  Dice before / after registration: {ev['dice_before']:.4f} / {ev['dice_after']:.4f} (measured, labels "
        f"1-3 of the embedded pair); J<=0: {100 * ev['fraction_jacobian_nonpositive']:.3f} % of voxels",
        f"  spike rate: {100 * s['spike_rate']:.2f} % of neurons per step (measured; unweighted layer mean "
        f"{100 * s['mean_layer_spike_rate']:.2f} %)",
        f"  SynOps measured: {s['synops_measured']:,} events vs ANN MACs (exact): {s['ann_macs']:,} per inference",
    ]
    for name, v in s["ratio_variants"].items():
        if v["ratio"] is not None:
            lines.append(f"  energy ratio ANN/SNN {v['ratio']:.2f}x [{v['how']}, {name}]: {v['formula']}")
    lines.append(f"  Loihi mapping: {s['cores']} cores on {s['chips']} chip(s) (planned; lower bound "
                 f"{s['lower_bound_cores']} cores)")
    lines.append(f"  model: {s['model']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
