"""One model on one pair, as a task a Dask worker (or this process) runs: what `spikereg-evaluate`, `spikereg-sweep`
and `spikereg-tune` hand out.

A task carries only names (the model file, the data source's settings, the pair's index), never arrays: the worker
loads the model once (cached per process) and builds its pair itself, so a cluster ships a few hundred bytes per
pair. Each task sets one torch thread, so a pair's numbers do not depend on which worker or how many ran it. Lava
is imported inside the task (the simulators stage), inside the worker (see `spikereg_deploy.sweep.cluster`).
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.sweep.results_db import PairResult

from .common import load_predictor, load_training_stage

__all__ = ["DataSpec", "ModelRef", "PairTask", "run_pair_task", "model_key", "make_tasks", "ENGINES"]

#: "model": the file's own forward (an ANN or SNN checkpoint in torch, a .net on the integer engine), as
#: `spikereg-evaluate` runs it; "reference" / "lava": the integer network on that simulator, as `spikereg-simulate`.
ENGINES = ("model", "reference", "lava")


@dataclass(frozen=True)
class DataSpec:
    """A pair source as the user named it (`imaging.sources.open_source`'s arguments)."""

    data: str
    shape: tuple[int, int, int]
    seed: int = 0
    count: int = 8
    split: str = "val"
    pair_list: str | None = None
    resolution: float | None = None
    multiple: int = 1
    prealign: bool = False  # --prealign affine (file pairs): `imaging.prealign`

    @classmethod
    def from_args(cls, args: Any, shape: tuple[int, int, int], multiple: int = 1) -> DataSpec:
        """The pairs named by `common.add_pair_source_options`' arguments (pair list and resolution when present)."""
        resolution = getattr(args, "resolution", None)
        if resolution is not None and ":" not in args.data:
            raise SpikeRegError(f"--resolution applies to file pairs (l2r:ROOT, neurite:ROOT), not --data {args.data}")
        prealign = getattr(args, "prealign", "none") == "affine"
        if prealign and ":" not in args.data:
            raise SpikeRegError(f"--prealign applies to file pairs (l2r:ROOT, neurite:ROOT), not --data {args.data}")
        return cls(args.data, shape, args.seed, args.pairs, args.split, getattr(args, "pair_list", None), resolution,
                   multiple, prealign)

    def open(self) -> Any:
        from spikereg_deploy.imaging.sources import open_source

        return open_source(self.data, self.shape, seed=self.seed, count=self.count, multiple=self.multiple,
                           split=self.split, pair_list=self.pair_list, resolution=self.resolution,
                           prealign=self.prealign)

    def settings(self) -> dict[str, Any]:
        """What decides a pair's numbers besides the model (the pair count does not: pair i is the same pair)."""
        out: dict[str, Any] = {"data": self.data, "shape": list(self.shape), "multiple": self.multiple}
        if ":" in self.data:
            out |= {"split": self.split, "resolution": self.resolution}
            if self.prealign:  # a key only when set: results stored before it existed keep their keys
                out["prealign"] = "affine"
        else:
            out["seed"] = self.seed
        return out


@dataclass(frozen=True)
class ModelRef:
    """A model file (None: the embedded default) and how it runs."""

    path: str | None
    engine: str = "model"
    tag: str = "fixed_pt"
    device: str = "cpu"  # engine "model" only: where the torch model runs (`torch_device.py`)


@dataclass(frozen=True)
class PairTask:
    model: ModelRef
    data: DataSpec
    index: int
    pair: str  # the source's key of the pair (known without building it)
    model_key: str
    settings_key: str

    def failed(self, error: str) -> PairResult:
        return PairResult(self.model_key, self.settings_key, self.pair, self.index, "failed", {}, None,
                          tuple(self.data.shape), " ".join(error.split()), 0.0, _worker_name())


def model_key(path: str | None, spec: Any) -> str:
    """The results database's key of a model: its model fingerprint and the hash of its file's bytes."""
    if path is None:
        _, default_model, _ = load_training_stage()
        file = default_model.embedded_checkpoint_path()
    else:
        file = Path(path)
    digest = hashlib.sha256(file.read_bytes()).hexdigest()[:16] if file is not None else "seeded"
    return f"{spec.model_fingerprint()}-{digest}"


def settings_key(model: ModelRef, data: DataSpec) -> str:
    device = {"device": model.device} if model.device != "cpu" else {}  # a GPU run is not bit-identical to CPU
    text = json.dumps({**data.settings(), "engine": model.engine, "tag": model.tag, **device}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_tasks(model: ModelRef, key: str, data: DataSpec, source: Any) -> list[PairTask]:
    """One task per pair of `source` (opened from `data`), for the model whose results key is `key`."""
    skey = settings_key(model, data)
    return [PairTask(model, data, i, source.key(i), key, skey) for i in range(len(source))]


class _SimulatorPredictor:
    """The integer network on the reference engine or in Lava (`simulators.simulation.simulate`), as a Predictor."""

    kind = "integer"

    def __init__(self, spec: Any, weights: dict[str, Any], name: str, engine: str, tag: str) -> None:
        from spikereg_deploy.predict import SpikeTally

        self.spec, self.weights, self.name, self.engine, self.tag = spec, weights, name, engine, tag
        self.tally = SpikeTally()

    def predict(self, fixed: Any, moving: Any) -> Any:
        import numpy as np

        from .common import load_simulators_stage

        if self.engine == "lava":
            _let_lava_set_fork()
        load_simulators_stage()
        from spikereg_deploy.simulators.simulation import simulate

        result = simulate(self.spec, self.weights, np.stack([fixed, moving]), engine=self.engine, tag=self.tag,
                          progress=False)
        self.tally.record(self.spec, fixed.shape, result.counts)
        return result.displacement


def _let_lava_set_fork() -> None:
    """Lava's message infrastructure calls `multiprocessing.set_start_method('fork')` when it is imported, which
    raises "context has already been set" in a process whose start method is fixed: every Dask worker, because
    distributed spawns them. Unset it before that import (the task uses no pool of its own); Lava then forks its
    process models from the worker as it does from a shell."""
    import multiprocessing
    import sys

    if "lava.magma.runtime.message_infrastructure.multiprocessing" not in sys.modules \
            and multiprocessing.get_start_method(allow_none=True) is not None:
        multiprocessing.set_start_method(None, force=True)


def integer_network(path: str | None) -> tuple[Any, dict[str, Any], str]:
    """(spec, weight mantissas, name) of a .net, an SNN checkpoint or the embedded default model."""
    if path is not None and path.endswith(".net"):
        from spikereg_deploy.export.reader import read_net

        loaded = read_net(path)
        if loaded.source == "netx":
            raise SpikeRegError("a plain NetX network ends in spikes, not a displacement: it cannot register", path)
        return loaded.spec, loaded.weights, path
    checkpoint, default_model, _ = load_training_stage()
    if path is None:
        model, origin = default_model.load_default_model()
        return model.spec, model.integer_weights(), origin
    kind = checkpoint.read_checkpoint(path)["kind"]
    if kind != "snn":
        raise SpikeRegError(f"holds an {kind} model: the {'/'.join(ENGINES[1:])} engines run spiking networks "
                            "(use --engine model for a teacher)", path)
    model = checkpoint.load_checkpoint(path)
    return model.spec, model.integer_weights(), path


def load_task_predictor(ref: ModelRef) -> Any:
    """The predictor a task runs (also what the coordinator loads once, for names, specs and keys)."""
    if ref.engine not in ENGINES:
        raise SpikeRegError(f"unknown engine {ref.engine!r} (choose {', '.join(ENGINES)})")
    if ref.engine == "model":
        return load_predictor(ref.path, ref.device)
    if ref.device != "cpu":
        raise SpikeRegError(f"--device {ref.device}: the {ref.engine} engine runs Loihi integers on the CPU; "
                            "--device applies to --engine model")
    spec, weights, name = integer_network(ref.path)
    return _SimulatorPredictor(spec, weights, f"{name} ({ref.engine} engine)", ref.engine, ref.tag)


_PREDICTORS: dict[ModelRef, Any] = {}  # per worker process: a model is loaded once, not once per pair
_SOURCES: dict[DataSpec, Any] = {}


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def run_pair_task(task: PairTask) -> PairResult:
    """Run one model on one pair; any error becomes a failed result with its one-line reason (never an exception:
    one bad pair must not stop the others)."""
    started = time.perf_counter()
    try:
        if task.model not in _PREDICTORS:
            _PREDICTORS[task.model] = load_task_predictor(task.model)
        _one_thread()  # after loading: the training stage's import sets two threads
        predictor = _PREDICTORS[task.model]
        if task.data not in _SOURCES:
            _SOURCES[task.data] = task.data.open()
        pair = _SOURCES[task.data].pair(task.index)
        if predictor.tally is not None:
            predictor.tally.clear()
        from spikereg_deploy.evaluation import pair_metrics

        disp = predictor.predict(pair.fixed, pair.moving)
        metrics = {"pair": pair.name, **pair_metrics(pair, disp)}
        counts = None
        if predictor.tally is not None and predictor.tally.inferences:
            counts = {name: c.to_dict() for name, c in predictor.tally.inferences[-1][1].items()}
        return PairResult(task.model_key, task.settings_key, task.pair, task.index, "ok", metrics, counts,
                          tuple(pair.fixed.shape), None, time.perf_counter() - started, _worker_name())
    except SpikeRegError as err:
        return task.failed(str(err))
    except (MemoryError, OSError, ValueError, RuntimeError, IndexError, KeyError, TypeError) as err:
        return task.failed(f"{type(err).__name__}: {err}")
