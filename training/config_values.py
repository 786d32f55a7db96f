"""Types and ranges of the training config's values, checked as the TOML file is read.

A value of the wrong type or range would otherwise surface as a traceback far into a run (a ZeroDivisionError
after a whole step for `checkpoint_every = 0`, a 65 TB allocation for `time_steps = 1e9`), so each is one line
naming the file, the table and the key. The table layout itself is checked in `train.flatten_config_tables`.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spikereg_deploy.errors import SpikeRegError

#: Upper bound of T (time steps) a config may ask for: a sanity bound that stops a typo from allocating terabytes;
#: rate-coded conversion in this project uses T <= 64 (configs/), so 1024 leaves room without being unbounded.
MAX_TIME_STEPS = 1024
NORMALISATIONS = ("connection", "layer")  # training.conversion.convert
STAGES = ("ann", "snn")
#: Where training pairs come from (`train.pair_batches`): the embedded MNI pairs, or label-map synthesis.
DATA_SOURCES = ("embedded", "synth")

Check = Callable[[Any], str | None]  # None when the value is fine, else what it must be


def _integer(low: int, high: int | None = None) -> Check:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)
        return None if ok else f"an integer >= {low}" + (f" and <= {high:,}" if high is not None else "")
    return check


def _number(low: float, high: float | None = None, *, low_open: bool = False) -> Check:
    def check(value: Any) -> str | None:
        ok = (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
              and (value > low if low_open else value >= low) and (high is None or value <= high))
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        return None if ok else f"a number {bound}" + (f" and <= {high:g}" if high is not None else "")
    return check


def _choice(options: tuple[str, ...]) -> Check:
    return lambda value: None if value in options else "one of " + ", ".join(repr(o) for o in options)


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else "a string (a file path, or empty)"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def _sizes(count: int | None) -> Check:
    def check(value: Any) -> str | None:
        ok = (isinstance(value, list | tuple) and (count is None or len(value) == count) and len(value) > 0
              and all(_integer(1)(v) is None for v in value))
        return None if ok else f"a list of {count or 'one or more'} positive integers"
    return check


def _names(value: Any) -> str | None:
    from spikereg_deploy.imaging.label_maps import LABEL_MAP_NAMES

    ok = isinstance(value, list | tuple) and all(v in LABEL_MAP_NAMES for v in value)
    return None if ok else "a list of label maps from " + ", ".join(LABEL_MAP_NAMES)


def _thresholds(value: Any) -> str | None:
    ok = isinstance(value, dict) and all(_number(0, low_open=True)(v) is None for v in value.values())
    return None if ok else "a table of layer name = positive number"


#: TrainConfig's keys (the tables of `train.TABLE_KEYS`).
TRAINING_VALUES: dict[str, Check] = {
    "stage": _choice(STAGES), "seed": _integer(0), "shape": _sizes(3), "init": _text,
    "data_seed_offset": _integer(0), "data_source": _choice(DATA_SOURCES), "spacing": _number(0, 16, low_open=True),
    "label_maps": _names, "random_fraction": _number(0, 1), "image_fraction": _number(0, 1),
    "max_displacement_mm": _number(0, 64), "max_rotation_deg": _number(0, 45), "max_shift_mm": _number(0, 64),
    "max_scaling": _number(0, 0.49),
    "steps": _integer(0), "batch_size": _integer(1), "lr": _number(0, low_open=True), "reg_weight": _number(0),
    "sparsity_weight": _number(0), "distill_weight": _number(0), "teacher": _text, "gain_lr": _number(0),
    "threshold_lr": _number(0), "ncc_window": _integer(1), "checkpoint_every": _integer(1), "accumulate": _integer(1),
    "label_weight": _number(0),
    "percentile": _number(0, 100, low_open=True), "normalisation": _choice(NORMALISATIONS),
    "calibration_pairs": _integer(1), "time_steps": _integer(0, MAX_TIME_STEPS),
    "threshold_scale": _number(0, 16, low_open=True),
}

#: `[model]`: UNetConfig's fields.
MODEL_VALUES: dict[str, Check] = {
    "encoder": _sizes(None), "decoder": _sizes(None), "bottleneck": _boolean,
    "time_steps": _integer(1, MAX_TIME_STEPS), "input_channels": _integer(1), "kernel": _integer(1),
    "up_kernel": _integer(1), "readout_kernel": _integer(1), "threshold": _number(0, low_open=True),
    "current_decay": _number(0, 1), "voltage_decay": _number(0, 1), "readout_gain": _number(0, low_open=True),
    "thresholds": _thresholds, "neuron_model": _text, "half_threshold_start": _boolean,
    "payload_bits": _integer(1), "max_payload": _integer(0),
}


def check_config_values(flat: dict[str, Any], where: Callable[[str], str], path: Path | None = None) -> None:
    """Refuse the first value of the wrong type or range; `where(key)` says which table the key is in."""
    for key, value in flat.items():
        if key == "model" and isinstance(value, dict):
            for model_key, model_value in value.items():
                _refuse_bad(MODEL_VALUES, model_key, model_value, "in [model]", path)
        else:
            _refuse_bad(TRAINING_VALUES, key, value, where(key), path)


def _refuse_bad(rules: dict[str, Check], key: str, value: Any, place: str, path: Path | None) -> None:
    rule = rules.get(key)
    wanted = rule(value) if rule is not None else None
    if wanted is not None:
        raise SpikeRegError(f"key {key!r} {place} must be {wanted}, got {value!r}", path)
