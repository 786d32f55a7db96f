"""Scale-out of per-pair evaluation: 1 vs 2 Dask workers on this machine, per-pair cost at three sizes, and the
planned wall time of a full-size Learn2Reg validation on N workers.

1. The same `spikereg-sweep` (embedded default model, integer reference engine, `--pairs` embedded pairs at 32^3
   and on the 2 mm MNI grid) serially and on a LocalCluster of 2 workers: wall time of each (measured), speedup,
   and whether every number in sweep.json except the run block is identical. At 32^3 a pair costs less than
   starting a cluster; at 2 mm the pairs dominate.
2. One pair through the reference engine at 32^3, at the 2 mm MNI grid (96 x 112 x 96) and at Learn2Reg OASIS's
   full size (160 x 192 x 224), one torch thread (as a worker runs it): wall seconds (measured) and the engine's
   memory estimate.
3. From those: the wall time of the 19-pair Learn2Reg validation at full size on N workers, ceil(19 / N) x the
   per-pair cost (projected: no scheduling or loading overhead, one core and that memory per worker).

    python benchmarks/bench_scale_out.py --pairs 8
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from spikereg_deploy.atomic import write_json
from spikereg_deploy.cli import sweep_cli
from spikereg_deploy.cli.common import load_training_stage

SIZES = {"32^3": (32, 32, 32), "2 mm MNI (96x112x96)": (96, 112, 96), "Learn2Reg full (160x192x224)": (160, 192, 224)}
L2R_VALIDATION_PAIRS = 19
WORKERS = (1, 2, 4, 8, 16, 32)


def sweep_seconds(pairs: int, workers: int, shape: tuple[int, int, int], folder: Path
                  ) -> tuple[float, dict[str, Any]]:
    out = folder / f"w{workers}-{'x'.join(map(str, shape))}"
    started = time.perf_counter()
    code = sweep_cli.main(["--pairs", str(pairs), "--engine", "reference", "--workers", str(workers),
                           "--input-shape", *map(str, shape), "--results-db", str(out) + ".sqlite", "-o", str(out)])
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"sweep with {workers} workers failed ({code})")
    return seconds, json.loads((out / "sweep.json").read_text())


def per_pair_cost(shape: tuple[int, int, int]) -> dict[str, Any]:
    """One random pair through the embedded default model on the reference engine, one thread."""
    import torch

    from spikereg_deploy.cli.pair_tasks import integer_network
    from spikereg_deploy.engine import IntegerNetwork, estimate_engine_memory

    torch.set_num_threads(1)
    spec, weights, _ = integer_network(None)
    image = np.random.default_rng(0).random((2, *shape)).astype(np.float32)
    started = time.perf_counter()
    run = IntegerNetwork(spec, weights).run(image, progress=False)
    seconds = time.perf_counter() - started
    events = sum(c.synops + c.graded_synops for c in run.counts.values())
    return {"shape": list(shape), "seconds": round(seconds, 2), "memory_estimate_GiB":
            round(estimate_engine_memory(spec, shape) / 2**30, 2), "synaptic_events": int(events),
            "time_steps": spec.time_steps, "how": "measured: one pair, reference engine, 1 torch thread"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("-o", "--output", default="benchmarks/results/scale_out.json")
    args = parser.parse_args()
    load_training_stage()
    sweeps = []
    with tempfile.TemporaryDirectory(prefix="scale-out-") as tmp:
        for name in ("32^3", "2 mm MNI (96x112x96)"):
            serial_s, serial = sweep_seconds(args.pairs, 1, SIZES[name], Path(tmp))
            parallel_s, parallel = sweep_seconds(args.pairs, 2, SIZES[name], Path(tmp))
            same = {k: v for k, v in serial.items() if k != "run"} == {k: v for k, v in parallel.items() if k != "run"}
            sweeps.append({"grid": name, "pairs": args.pairs, "shape": list(SIZES[name]), "engine": "reference",
                           "wall_time_1_worker_s": round(serial_s, 1), "wall_time_2_workers_s": round(parallel_s, 1),
                           "speedup_2_workers": round(serial_s / parallel_s, 2), "identical_results": same,
                           "dice_mean": serial["models"][0]["aggregate"]["dice"]["mean"],
                           "how": "measured: the whole spikereg-sweep call, cluster start and model loading "
                                  "included"})
    costs = {name: per_pair_cost(shape) for name, shape in SIZES.items()}
    full = costs["Learn2Reg full (160x192x224)"]
    plan = [{"workers": n, "wall_time_s": round(math.ceil(L2R_VALIDATION_PAIRS / n) * full["seconds"], 1),
             "memory_per_worker_GiB": full["memory_estimate_GiB"]} for n in WORKERS]
    result = {
        "benchmark": "bench_scale_out",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "model": serial["models"][0]["model"],
        "sweeps": sweeps,
        "per_pair": costs,
        "planned_full_validation": {"pairs": L2R_VALIDATION_PAIRS, "rows": plan,
                                    "how": "projected: ceil(pairs / workers) x the measured full-size per-pair "
                                           "seconds; no loading or scheduling overhead"},
    }
    write_json(Path(args.output), result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
