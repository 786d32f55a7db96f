"""Conversion variants of a teacher, named and rebuilt from their names: what the accuracy/energy frontier compares.

A variant is `TEACHER:NEURON:INPUT:T[:ftSTEPS]`, e.g. `qcfs4:if-sr-half:bias:4:ft20`. The neuron names the
conversion levers of the literature (docs/hardware-facts.md, "Soft-reset neurons"):
- `cuba`: today's CUBA neuron (SLAYER's, reset to zero; the teacher config's decays), thresholds calibrated;
- `if-sr`: CUBA-SR as an IF neuron (iDecay 4096, vDecay 0), reset by subtraction, membrane starting at 0;
- `if-sr-half`: the same, starting at half the threshold (QCFS's shift);
- `mt`: the multi-threshold graded neuron CUBA-MT as an IF with half-threshold start, 4-bit payloads, at most L
  (the QCFS teacher's levels) per step;
- `sd`: lava-dl's sigma-delta ReLU neuron (SDNN), 16-bit signed payloads carrying activation changes; its delta
  threshold is half the teacher's quantization step (`conversion._convert_sigma_delta`). With input "bias" the
  static input is sent once: T = 1 is its natural latency (`qcfs8:sd:bias:1`).
From a QCFS teacher the soft-reset variants take its clips as thresholds; otherwise thresholds are calibrated.
Each built checkpoint is cached under its name, so a rerun only evaluates.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spikereg_deploy.errors import SpikeRegError

from .train import train
from .train_config import TrainConfig

NEURONS: dict[str, dict[str, Any]] = {
    "cuba": {"neuron_model": "CUBA"},
    "if-sr": {"neuron_model": "CUBA-SR", "current_decay": 1.0, "voltage_decay": 0.0, "half_threshold_start": False},
    "if-sr-half": {"neuron_model": "CUBA-SR", "current_decay": 1.0, "voltage_decay": 0.0,
                   "half_threshold_start": True},
    "mt": {"neuron_model": "CUBA-MT", "current_decay": 1.0, "voltage_decay": 0.0, "half_threshold_start": True,
           "payload_bits": 4, "max_payload": 0},
    "sd": {"neuron_model": "SDNN"},
}
_PATTERN = re.compile(r"^(?P<teacher>[\w.-]+):(?P<neuron>[\w-]+):(?P<input>analog|bias):(?P<t>\d+)(:ft(?P<ft>\d+))?$")


@dataclass(frozen=True)
class Variant:
    teacher: str
    neuron: str
    input_mode: str
    time_steps: int
    fine_tune_steps: int = 0

    @classmethod
    def parse(cls, text: str) -> Variant:
        m = _PATTERN.match(text)
        if m is None or m["neuron"] not in NEURONS or int(m["t"]) < 1:
            raise SpikeRegError(f"variant {text!r}: use TEACHER:NEURON:INPUT:T[:ftSTEPS] with NEURON one of "
                                f"{', '.join(NEURONS)}, INPUT analog or bias, T >= 1")
        return cls(m["teacher"], m["neuron"], m["input"], int(m["t"]), int(m["ft"] or 0))

    @property
    def name(self) -> str:
        tail = f":ft{self.fine_tune_steps}" if self.fine_tune_steps else ""
        return f"{self.teacher}:{self.neuron}:{self.input_mode}:{self.time_steps}{tail}"

    def file_name(self, suffix: str = "") -> str:
        return self.name.replace(":", "_") + suffix + ".pt"

    def model_keys(self) -> dict[str, Any]:
        return {**NEURONS[self.neuron], "input_mode": self.input_mode}


def build_variant(variant: Variant, teacher_path: str | Path, folder: str | Path, shape: tuple[int, int, int],
                  fine_tune: dict[str, Any], progress: bool = False) -> Path:
    """The variant's checkpoint in `folder`: converted (cached), then fine-tuned with `fine_tune` ([optim] keys)
    when it asks for steps. Conversion uses configs/snn.toml's settings (percentile 99.9, connection-wise)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = TrainConfig(stage="snn", shape=shape, init=str(teacher_path), model=variant.model_keys(),
                       time_steps=variant.time_steps, steps=0, calibration_pairs=4)
    converted = folder / Variant(variant.teacher, variant.neuron, variant.input_mode, variant.time_steps).file_name()
    base.validate()
    train(base, converted, progress=progress, log=lambda _m: None)
    if not variant.fine_tune_steps:
        return converted
    tuned = folder / variant.file_name()
    cfg = TrainConfig(**{**base.__dict__, "init": str(converted), "steps": variant.fine_tune_steps,
                         "model": {}, "time_steps": 0, **fine_tune})
    cfg.validate()
    train(cfg, tuned, progress=progress, log=lambda _m: None)
    return tuned
