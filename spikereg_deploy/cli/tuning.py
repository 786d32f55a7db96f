"""The Optuna study behind `spikereg-tune`: search space, one trial (convert, optionally fine-tune, evaluate through
the per-pair tasks), the Pareto front, the chosen point as a training config.

Storage is Optuna's RDB storage (an SQLite file by default, any SQLAlchemy URL), with heartbeats: a trial whose
process was killed is marked failed when the study is next opened (`fail_stale_trials`), and the study continues
from what its storage holds. A study records the teacher it tunes (model fingerprint + file hash), the space and
the validation data; opening it for another teacher, space or data is refused.
"""
from __future__ import annotations

import csv
import io
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spikereg_deploy.errors import SpikeRegError, read_toml

#: The knobs and their ranges: a list of texts is a choice, [low, high] a range (ints: integers), one value fixed.
DEFAULT_SPACE: dict[str, list[Any]] = {
    "neuron": ["if-sr-half", "mt", "cuba"],  # training.variants.NEURONS
    "time_steps": [1, 16],
    "percentile": [99.0, 99.99],
    "threshold_scale": [0.8, 1.25],
    "payload_bits": [3, 8],  # graded neurons only
    "input_mode": ["bias", "analog"],
    "fine_tune_steps": [0],
    "sparsity_weight": [0.0, 0.001],  # only when fine_tune_steps > 0
}
LOG_RANGES = ("time_steps", "threshold_scale")
HEARTBEAT_S, GRACE_S = 30, 120


@dataclass
class TuneSetup:
    teacher: str
    data: Any  # pair_tasks.DataSpec of the validation pairs
    space: dict[str, list[Any]]
    state: Path
    profile: Any
    workers: int
    scheduler: str | None
    results_db: str


def read_space(spec: str) -> dict[str, list[Any]]:
    """The default space, or a TOML file of `knob = [choices...]` / `[low, high]` / `[value]` lines."""
    if spec == "default":
        return dict(DEFAULT_SPACE)
    from spikereg_deploy.training.variants import NEURONS

    raw = read_toml(Path(spec), "search space")
    space = dict(DEFAULT_SPACE)
    for key, value in raw.items():
        if key not in DEFAULT_SPACE:
            raise SpikeRegError(f"unknown knob {key!r} (knobs: {', '.join(DEFAULT_SPACE)})", spec)
        if not isinstance(value, list) or not value:
            raise SpikeRegError(f"{key} must be a non-empty list: choices, [low, high] or [value]", spec)
        if key in ("neuron", "input_mode"):
            allowed = list(NEURONS) if key == "neuron" else ["analog", "bias"]
            bad = [v for v in value if v not in allowed]
            if bad:
                raise SpikeRegError(f"{key} {bad[0]!r} is not one of {', '.join(allowed)}", spec)
        elif len(value) > 2 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value) \
                or value[0] > value[-1]:
            raise SpikeRegError(f"{key} must be [low, high] (low <= high) or [value], numbers", spec)
        space[key] = value
    return space


def _suggest(trial: Any, space: dict[str, list[Any]], key: str) -> Any:
    values = space[key]
    if len(values) == 1:
        trial.set_user_attr(f"fixed_{key}", values[0])
        return values[0]
    if isinstance(values[0], str):
        return trial.suggest_categorical(key, values)
    low, high = values
    if isinstance(low, int) and isinstance(high, int):
        return trial.suggest_int(key, low, high, log=key in LOG_RANGES and low >= 1)
    return trial.suggest_float(key, float(low), float(high), log=key in LOG_RANGES and low > 0)


def trial_settings(trial: Any, space: dict[str, list[Any]]) -> dict[str, Any]:
    """The knobs of one trial (conditional ones only where they mean something)."""
    s = {key: _suggest(trial, space, key) for key in ("neuron", "time_steps", "percentile", "threshold_scale",
                                                      "input_mode", "fine_tune_steps")}
    if s["neuron"] == "mt":
        s["payload_bits"] = _suggest(trial, space, "payload_bits")
    if s["fine_tune_steps"] > 0:
        s["sparsity_weight"] = _suggest(trial, space, "sparsity_weight")
    return s


def train_config_tables(settings: dict[str, Any], teacher: str, shape: Sequence[int]) -> dict[str, dict[str, Any]]:
    """The spikereg-train config of a trial's settings, by TOML table ("" = top level)."""
    from spikereg_deploy.training.variants import NEURONS

    model = {**NEURONS[settings["neuron"]], "input_mode": settings["input_mode"]}
    if "payload_bits" in settings:
        model["payload_bits"] = int(settings["payload_bits"])
    optim: dict[str, Any] = {"steps": int(settings["fine_tune_steps"])}
    if settings.get("sparsity_weight"):
        optim["sparsity_weight"] = float(settings["sparsity_weight"])
    return {"": {"stage": "snn", "seed": 0, "shape": [int(n) for n in shape], "init": str(teacher)},
            "model": model,
            "conversion": {"percentile": float(settings["percentile"]), "normalisation": "connection",
                           "calibration_pairs": 4, "time_steps": int(settings["time_steps"]),
                           "threshold_scale": float(settings["threshold_scale"])},
            "optim": optim}


def toml_text(tables: dict[str, dict[str, Any]], comment: str) -> str:
    """TOML of flat tables of strings, numbers, booleans and number lists (JSON's quoting is valid TOML)."""
    def value(v: Any) -> str:
        return "true" if v is True else "false" if v is False else json.dumps(v)

    lines = [f"# {line}" for line in comment.splitlines()]
    for table, items in tables.items():
        if table:
            lines.append(f"\n[{table}]")
        lines.extend(f"{k} = {value(v)}" for k, v in items.items())
    return "\n".join(lines) + "\n"


def _build_trial_model(settings: dict[str, Any], setup: TuneSetup, number: int) -> Path:
    """Convert (and fine-tune when asked) the teacher with these settings; the checkpoint of trial `number`."""
    from spikereg_deploy.training.train import train
    from spikereg_deploy.training.train_config import TrainConfig

    tables = train_config_tables(settings, setup.teacher, setup.data.shape)
    flat = {**tables[""], **tables["conversion"], "model": tables["model"], "steps": 0}
    flat["shape"] = tuple(flat["shape"])
    folder = setup.state / "trials"
    folder.mkdir(parents=True, exist_ok=True)
    converted = folder / f"trial_{number:04d}_converted.pt"
    cfg = TrainConfig(**flat)
    cfg.validate()
    train(cfg, converted, progress=False, log=lambda _m: None)
    if not settings["fine_tune_steps"]:
        return converted
    tuned = folder / f"trial_{number:04d}.pt"
    cfg = TrainConfig(**{**flat, "init": str(converted), "model": {}, "time_steps": 0, **tables["optim"]})
    cfg.validate()
    train(cfg, tuned, progress=False, log=lambda _m: None)
    return tuned


def _evaluate(path: Path, setup: TuneSetup) -> dict[str, Any]:
    """The trial's model on the validation pairs, through the same per-pair tasks and results database."""
    from spikereg_deploy.sweep.aggregate import model_summary
    from spikereg_deploy.sweep.cluster import run_tasks
    from spikereg_deploy.sweep.results_db import ResultsDB

    from .pair_tasks import ModelRef, load_task_predictor, make_tasks, model_key, run_pair_task

    ref = ModelRef(str(path))
    predictor = load_task_predictor(ref)
    source = setup.data.open()
    tasks = make_tasks(ref, model_key(ref.path, predictor.spec), setup.data, source)
    db = ResultsDB(setup.results_db)
    try:
        run_tasks(tasks, run_pair_task, db, workers=setup.workers, scheduler=setup.scheduler, progress=False)
        summary = model_summary(db.results(tasks[0].model_key, tasks[0].settings_key), predictor.spec,
                                predictor.kind, setup.profile)
    finally:
        db.close()
    if summary["failed"]:
        first = summary["failed"][0]
        raise SpikeRegError(f"{len(summary['failed'])} validation pair(s) failed (first {first['pair']}: "
                            f"{first['error']})")
    return summary


def _study_identity(setup: TuneSetup) -> dict[str, str]:
    from spikereg_deploy.training.checkpoint import load_checkpoint

    from .pair_tasks import model_key

    teacher = load_checkpoint(setup.teacher, kind="ann")
    return {"teacher_key": model_key(setup.teacher, teacher.spec), "space": json.dumps(setup.space, sort_keys=True),
            "data": json.dumps({**setup.data.settings(), "pairs": setup.data.count}, sort_keys=True)}


def open_study(storage_target: str, name: str, setup: TuneSetup, sampler_seed: int) -> Any:
    """Create or resume the study; refuse one made for another teacher, space or data."""
    import optuna
    import sqlalchemy as sa

    from spikereg_deploy.sweep.results_db import check_sqlite_target, database_url, driver_reason, sqlite_path

    url = database_url(storage_target)
    if (path := sqlite_path(url)) is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        check_sqlite_target(path, storage_target)
    identity = _study_identity(setup)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeats: stable since 2.9
    try:
        storage = optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
        study = optuna.create_study(study_name=name, storage=storage, directions=["maximize", "maximize"],
                                    load_if_exists=True)
        # A resumed study must not replay the samples of its first run: the seed moves on with the trials stored.
        study.sampler = optuna.samplers.TPESampler(seed=sampler_seed + len(study.trials))
    except (sa.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError, ValueError) as err:
        raise SpikeRegError(f"cannot open Optuna storage ({driver_reason(err)})", storage_target) from None
    attrs = study.user_attrs
    if not attrs:
        for key, value in identity.items():
            study.set_user_attr(key, value)
        study.set_user_attr("teacher_file", setup.teacher)
    else:
        for key, value in identity.items():
            if attrs.get(key) != value:
                what = {"teacher_key": f"teacher {attrs.get('teacher_file')!r}", "space": "another search space",
                        "data": "other validation pairs"}[key]
                raise SpikeRegError(f"study {name!r} was made for {what}, not this run's; use another --study",
                                    storage_target)
    optuna.storages.fail_stale_trials(study)  # trials of a killed run: failed, so they are not waited for
    return study


def run_study(setup: TuneSetup, storage: str, name: str, trials: int, sampler_seed: int) -> tuple[Any, int]:
    """Run trials until the study holds `trials` complete ones (failed trials are recorded, not counted)."""
    import optuna
    from tqdm import tqdm

    study = open_study(storage, name, setup, sampler_seed)
    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    remaining = max(0, trials - done)

    def objective(trial: Any) -> tuple[float, float]:
        settings = trial_settings(trial, setup.space)
        path = _build_trial_model(settings, setup, trial.number)
        summary = _evaluate(path, setup)
        energy = summary["energy"] or {}
        dice, ratio = summary["aggregate"]["dice"]["mean"], energy.get("ratio_measured_45nm", 1.0)
        trial.set_user_attr("settings", settings)
        trial.set_user_attr("checkpoint", str(path))
        trial.set_user_attr("pairs", summary["pairs"])
        trial.set_user_attr("dice_std", summary["aggregate"]["dice"]["std"])
        trial.set_user_attr("energy", {k: v for k, v in energy.items() if isinstance(v, int | float | str)})
        bar.update(1)
        return float(dice), float(ratio)

    with tqdm(total=trials, initial=min(done, trials), desc="trials", unit="trial") as bar:
        study.optimize(objective, n_trials=remaining, catch=(SpikeRegError,))
    return study, remaining


def variant_name(settings: dict[str, Any]) -> str:
    tail = f":ft{settings['fine_tune_steps']}" if settings.get("fine_tune_steps") else ""
    bits = f", {settings['payload_bits']}-bit payloads" if "payload_bits" in settings else ""
    return (f"{settings['neuron']}:{settings['input_mode']}:{settings['time_steps']}{tail} (percentile "
            f"{settings['percentile']:.3f}, threshold x{settings['threshold_scale']:.3f}{bits})")


def pareto_rows(study: Any) -> list[dict[str, Any]]:
    """The study's Pareto front (Optuna's `best_trials`), by increasing energy ratio, each with its settings."""
    rows = [{"trial": t.number, "dice": t.values[0], "ratio_measured_45nm": t.values[1],
             "settings": t.user_attrs["settings"], "variant": variant_name(t.user_attrs["settings"]),
             "checkpoint": t.user_attrs["checkpoint"], "pairs": t.user_attrs["pairs"],
             "dice_std": t.user_attrs["dice_std"], "energy": t.user_attrs["energy"]} for t in study.best_trials]
    return sorted(rows, key=lambda r: (r["ratio_measured_45nm"], r["trial"]))


def choose_point(front: list[dict[str, Any]], max_dice_drop: float, teacher: str, shape: Sequence[int]
                 ) -> dict[str, Any]:
    """The highest energy ratio on the front whose Dice is within `max_dice_drop` of the front's best Dice, with the
    spikereg-train config that rebuilds it (`toml`)."""
    best = max(r["dice"] for r in front)
    row = max((r for r in front if r["dice"] >= best - max_dice_drop),
              key=lambda r: (r["ratio_measured_45nm"], -r["trial"]))
    comment = (f"spikereg-tune, trial {row['trial']}: Dice {row['dice']:.4f} and energy ratio "
               f"{row['ratio_measured_45nm']:.2f}x (measured on the validation pairs)\n{row['variant']}\n"
               "spikereg-train --config chosen.toml -o snn.pt")
    return {**row, "toml": toml_text(train_config_tables(row["settings"], teacher, shape), comment)}


def trials_csv(study: Any) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["trial", "state", "dice", "ratio_measured_45nm", "settings"])
    for t in study.trials:
        values = t.values or [math.nan, math.nan]
        writer.writerow([t.number, t.state.name, values[0], values[1], json.dumps(t.user_attrs.get("settings"))])
    return buf.getvalue()


def plot_pareto(study: Any, front: list[dict[str, Any]], chosen: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spikereg_deploy.atomic import atomic_file

    done = [t for t in study.trials if t.values]
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.scatter([t.values[1] for t in done], [t.values[0] for t in done], c="0.7", label="trials")
    ax.plot([r["ratio_measured_45nm"] for r in front], [r["dice"] for r in front], "o-", c="C0", label="Pareto front")
    ax.scatter([chosen["ratio_measured_45nm"]], [chosen["dice"]], marker="*", s=250, c="C3", zorder=5,
               label=f"chosen: trial {chosen['trial']}")
    ax.set_xscale("log")
    ax.set_xlabel("energy ratio ANN / SNN (measured counts, 45 nm proxy)")
    ax.set_ylabel("Dice, mean over validation pairs (measured)")
    ax.set_title(f"spikereg-tune: study {study.study_name}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_file(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
