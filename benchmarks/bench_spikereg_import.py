"""How far the imported integer network is from SpikeReg's own forward pass, layer by layer (docs/spikereg-import.md).

No real SpikeReg checkpoint ships and none can be downloaded offline, so the checkpoint is random (seeded) with
SpikeRegUNet's keys and shapes (`export/spikereg_reference.random_state_dict`; conv gain 4 puts SpikeReg's layers near
its 10 % target spike rate). It is imported exactly as `spikereg-export --from spikereg` does, written to a .net and
read back, and run on the reference engine (Loihi integers, spike for spike what Lava runs) on one embedded pair;
the float re-implementation of SpikeReg's forward (`export/spikereg_reference.py`) runs on the same pair:
- `spikereg`: SpikeReg as it is (inhibition, biases, per-level windows, rates between levels);
- `spikereg_mapped_only`: the same without the construct the import drops (top-k inhibition), so what is left is
  the timing (rates vs spikes, per-level windows vs one T) and the quantization (8-bit weights, integer biases);
- `spikereg_poisson`: SpikeReg with its own Poisson input encoding (seeded), a yardstick of how much SpikeReg
  differs from itself run to run.
Per layer: spike rates (spikes per neuron per step, each over its own window) and their difference; displacement:
mean |du| (voxels), Pearson correlation, mean |u| of each side. `without_biases` repeats the comparison for the
imported network with its biases removed (what the import did before the format had them).

    python benchmarks/bench_spikereg_import.py            # -> benchmarks/results/spikereg_import.json
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spikereg_deploy.atomic import write_json
from spikereg_deploy.engine import IntegerNetwork
from spikereg_deploy.export.export_model import export_model
from spikereg_deploy.export.spikereg_import import import_checkpoint
from spikereg_deploy.export.spikereg_model import SPIKEREG_COMMIT, validate
from spikereg_deploy.export.spikereg_reference import random_state_dict, reference_forward
from spikereg_deploy.imaging.synthetic import embedded_pair
from spikereg_deploy.layer_bias import is_bias_key


def _displacement(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    corr = np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] if ours.std() > 0 and theirs.std() > 0 else float("nan")
    return {"mean_abs_diff_voxels": float(np.abs(ours - theirs).mean()), "correlation": float(corr),
            "mean_abs_ours_voxels": float(np.abs(ours).mean()),
            "mean_abs_spikereg_voxels": float(np.abs(theirs).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="checkpoint seed")
    parser.add_argument("--gain", type=float, default=4.0, help="conv weight gain of the random checkpoint")
    parser.add_argument("--pair", type=int, default=0, help="embedded pair index (seed 0)")
    parser.add_argument("--shape", type=int, nargs=3, default=(32, 32, 32))
    parser.add_argument("--json", default="benchmarks/results/spikereg_import.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    ckpt = validate(random_state_dict(args.seed, args.gain), f"random checkpoint (seed {args.seed})")
    imported = import_checkpoint(ckpt)
    pair = embedded_pair(args.pair, tuple(args.shape))
    image = np.stack([pair.fixed, pair.moving]).astype(np.float64)
    with tempfile.TemporaryDirectory() as tmp:  # run the file as exported, not the in-memory import
        loaded = export_model(imported.spec, imported.weights, tuple(args.shape), Path(tmp) / "spikereg.net")
    start = time.perf_counter()
    ours = IntegerNetwork(loaded.spec, loaded.weights).run(image, record_spikes=True)
    seconds = {"integer_engine": time.perf_counter() - start}
    unbiased = IntegerNetwork(loaded.spec, {k: w for k, w in loaded.weights.items() if not is_bias_key(k)}).run(image)
    variants = {"spikereg": {}, "spikereg_mapped_only": {"inhibition": False},
                "spikereg_poisson": {"poisson_seed": args.seed}}
    refs = {}
    for name, kwargs in variants.items():
        start = time.perf_counter()
        refs[name] = reference_forward(ckpt, image, **kwargs)
        seconds[name] = time.perf_counter() - start
    layers: list[dict[str, Any]] = []
    for m in imported.layers:
        if m.name == "readout":
            continue
        spikes = np.stack(ours.spikes[m.name])
        row: dict[str, Any] = {"layer": m.name, "spikereg_module": m.spikereg, "mapping": m.status,
                               "spikereg_window": m.spikereg_window, "time_steps": imported.spec.time_steps,
                               "max_bias_over_threshold": m.max_bias, "bias_clipped": m.bias_clipped,
                               "rate_ours": float(spikes.mean()),
                               "rate_ours_without_biases": unbiased.counts[m.name].spikes / (
                                   unbiased.counts[m.name].neurons * imported.spec.time_steps)}
        for name, ref in refs.items():
            theirs = ref.spikes[m.name].numpy()
            row[f"rate_{name}"] = float(theirs.mean())
            row[f"rate_diff_{name}"] = row["rate_ours"] - row[f"rate_{name}"]
            if theirs.shape == spikes.shape:  # same window: spike-for-spike agreement is defined
                row[f"agreement_{name}"] = float((spikes == theirs.astype(bool)).mean())
        layers.append(row)
    assert ours.displacement is not None
    results = {
        "what": "imported integer network (reference engine) vs a float re-implementation of SpikeReg's forward, "
                "same input; random seeded checkpoint with SpikeReg's keys and shapes (no real one ships)",
        "measured": True, "spikereg_commit": SPIKEREG_COMMIT, "checkpoint": {"seed": args.seed, "gain": args.gain},
        "input": {"data": "embedded", "pair": args.pair, "shape": list(args.shape)},
        "time_steps": imported.spec.time_steps, "rate_unit": "spikes per neuron per step",
        "layers": layers,
        "displacement": {name: _displacement(ours.displacement, ref.displacement.numpy())
                         for name, ref in refs.items()},
        "displacement_without_biases": {name: _displacement(unbiased.displacement, ref.displacement.numpy())
                                        for name, ref in refs.items()},
        "spikereg_vs_its_poisson_input": _displacement(refs["spikereg_poisson"].displacement.numpy(),
                                                       refs["spikereg"].displacement.numpy()),
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "machine": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
    }
    write_json(args.json, results, null_non_finite=True)
    print(f"{'layer':<12} {'ours':>7} {'spikereg':>9} {'diff':>8} {'mapped-only':>12}")
    for row in layers:
        print(f"{row['layer']:<12} {row['rate_ours']:7.4f} {row['rate_spikereg']:9.4f} "
              f"{row['rate_diff_spikereg']:+8.4f} {row['rate_spikereg_mapped_only']:12.4f}")
    for name, d in results["displacement"].items():
        e = results["displacement_without_biases"][name]
        print(f"displacement vs {name}: mean |du| {d['mean_abs_diff_voxels']:.4f} voxels, r = {d['correlation']:.3f} "
              f"(biases removed: {e['mean_abs_diff_voxels']:.4f}, r = {e['correlation']:.3f}) (measured)")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
