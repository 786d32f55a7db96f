"""The training config: `TrainConfig` and its TOML layout (top-level keys and the `[model]`, `[data]`, `[optim]`,
`[conversion]` tables), checked on read so that a wrong key, table or value is one line naming the file."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spikereg_deploy.errors import SpikeRegError, read_toml
from spikereg_deploy.unet import UNetConfig

from .config_values import check_config_values

if TYPE_CHECKING:
    from spikereg_deploy.imaging.label_synth import LabelSynthConfig

#: The TOML layout: each key of `TrainConfig` lives in exactly one place, the top level ("") or one table.
#: `[model]` holds `UNetConfig`'s fields (the architecture); the other tables hold the keys named here.
TOP_LEVEL = ""
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    TOP_LEVEL: ("stage", "seed", "shape", "init"),
    "data": ("data_seed_offset", "data_source", "spacing", "label_maps", "random_fraction", "image_fraction",
             "max_displacement_mm", "max_rotation_deg", "max_shift_mm", "max_scaling"),
    "optim": ("steps", "batch_size", "lr", "reg_weight", "sparsity_weight", "distill_weight", "teacher", "gain_lr",
              "threshold_lr", "ncc_window", "checkpoint_every", "accumulate", "label_weight"),
    "conversion": ("percentile", "normalisation", "calibration_pairs", "time_steps", "threshold_scale"),
}
MODEL_TABLE = "model"


@dataclass
class TrainConfig:
    """Everything a run needs; read from TOML (top-level keys and the `[model]`, `[data]`, `[optim]`,
    `[conversion]` tables, laid out as `TABLE_KEYS` says)."""

    stage: str = "ann"
    model: dict[str, Any] = field(default_factory=dict)
    shape: tuple[int, int, int] = (32, 32, 32)
    seed: int = 0
    steps: int = 300
    batch_size: int = 2
    lr: float = 1e-3
    reg_weight: float = 1.0
    sparsity_weight: float = 0.0
    distill_weight: float = 0.0  # stage snn: weight of mean squared (SNN - teacher) displacement, voxels^2
    teacher: str = ""  # stage snn: ANN checkpoint for distillation (default: `init` when it is an ANN checkpoint)
    gain_lr: float = 0.0  # stage snn: Adam lr of the readout gain's logarithm (0 = keep conversion's gain fixed)
    threshold_lr: float = 0.0  # stage snn: Adam lr of each spiking layer's log threshold (0 = thresholds fixed)
    ncc_window: int = 9
    #: Weight of 1 - soft Dice of the warped label maps (SynthMorph's loss; 0 = images only, as before). Needs
    #: pairs with labels (data_source "synth").
    label_weight: float = 0.0
    checkpoint_every: int = 50
    #: Gradient accumulation: each optimizer step averages the gradients of this many batches (effective batch =
    #: batch_size x accumulate), so a fine-tune's steps are not set by the noise of 2-pair batches.
    accumulate: int = 1
    init: str = ""  # stage snn: ANN checkpoint to convert (or an SNN checkpoint to continue from)
    percentile: float = 99.9
    normalisation: str = "connection"
    calibration_pairs: int = 4
    time_steps: int = 0  # stage snn: T of the converted network (0 = the teacher config's T)
    threshold_scale: float = 1.0  # stage snn: every converted threshold x this (1 = as conversion sets them)
    data_seed_offset: int = 10_000  # training pairs use seeds >= this; evaluation uses lower seeds
    #: "embedded": the MNI152 pairs on the network grid (`imaging.synthetic`); "synth": SynthMorph-style patches
    #: (`shape`) of `spacing` mm synthesised from label maps (`imaging.label_synth`; the keys below are its knobs)
    data_source: str = "embedded"
    spacing: float = 2.0
    label_maps: tuple[str, ...] = ()  # () = every offline map (`imaging.label_maps.LABEL_MAP_NAMES`)
    random_fraction: float = 0.5
    image_fraction: float = 0.25
    max_displacement_mm: float = 8.0
    max_rotation_deg: float = 0.0
    max_shift_mm: float = 0.0
    max_scaling: float = 0.0

    @classmethod
    def from_toml(cls, path: str | Path) -> TrainConfig:
        p = Path(path)
        flat = flatten_config_tables(read_toml(p, "config"), p)
        for key in ("shape", "label_maps"):
            if isinstance(flat.get(key), list):
                flat[key] = tuple(flat[key])
        try:
            cfg = cls(**flat)
            cfg.validate()
        except SpikeRegError as err:
            raise SpikeRegError(err.message, p) from None
        return cfg

    def validate(self) -> None:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        check_config_values(values, lambda key: _where(next(t for t, keys in TABLE_KEYS.items() if key in keys)))
        if self.stage not in ("ann", "snn"):
            raise SpikeRegError(f"stage must be 'ann' or 'snn', got {self.stage!r}")
        if self.steps < 0 or self.batch_size <= 0 or self.lr <= 0:
            raise SpikeRegError("steps must be >= 0, batch_size and lr positive")
        if self.steps == 0 and self.stage != "snn":
            raise SpikeRegError("steps 0 (convert only, no fine-tuning) is for stage snn")
        UNetConfig.from_dict(self.model)  # validates the architecture
        if self.gain_lr < 0 or self.threshold_lr < 0:
            raise SpikeRegError("gain_lr and threshold_lr must be >= 0 (0 keeps that parameter fixed)")
        if (self.gain_lr or self.threshold_lr) and self.stage != "snn":
            raise SpikeRegError("gain_lr and threshold_lr are for stage snn (the SNN's readout gain, its thresholds)")
        if min(self.distill_weight, self.sparsity_weight, self.reg_weight, self.label_weight) < 0:
            raise SpikeRegError("reg_weight, sparsity_weight, distill_weight and label_weight must be >= 0")
        if self.distill_weight and self.stage != "snn":
            raise SpikeRegError("distill_weight is for stage snn (the ANN teacher is the distillation target)")
        if self.time_steps < 0:
            raise SpikeRegError("time_steps must be >= 0 (0 = the teacher's T)")
        if len(self.shape) != 3:
            raise SpikeRegError("shape must have three sizes")
        if self.data_source == "synth":
            self.synth_config().validate()

    def synth_config(self) -> LabelSynthConfig:
        """The label-synthesis settings of `data_source = "synth"` (imported here: imaging loads scipy)."""
        from spikereg_deploy.imaging.label_maps import LABEL_MAP_NAMES
        from spikereg_deploy.imaging.label_synth import LabelSynthConfig

        return LabelSynthConfig(spacing=self.spacing, maps=tuple(self.label_maps) or LABEL_MAP_NAMES,
                                random_fraction=self.random_fraction, image_fraction=self.image_fraction,
                                max_displacement_mm=self.max_displacement_mm, max_rotation_deg=self.max_rotation_deg,
                                max_shift_mm=self.max_shift_mm, max_scaling=self.max_scaling)


def _where(table: str) -> str:
    return "at the top level" if table == TOP_LEVEL else f"in [{table}]"


def flatten_config_tables(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """`TrainConfig` keyword arguments from a parsed TOML file, refusing anything outside `TABLE_KEYS`.

    A key in the wrong table would otherwise be read as if it were in the right one (or silently ignored by a
    future reader), so each problem is one line naming the file, the table and the key."""
    home = {key: table for table, keys in TABLE_KEYS.items() for key in keys}
    tables = [MODEL_TABLE, *(t for t in TABLE_KEYS if t != TOP_LEVEL)]
    model_keys = {f.name for f in fields(UNetConfig)}
    flat: dict[str, Any] = {}
    for name, value in raw.items():
        if not isinstance(value, dict) or name in home:
            if name in tables:
                raise SpikeRegError(f"[{name}] must be a table, not a value", path)
            _check_home(name, TOP_LEVEL, home, path)
            flat[name] = value
        elif name == MODEL_TABLE:
            unknown = sorted(set(value) - model_keys)
            if unknown and unknown[0] in home:
                raise SpikeRegError(f"key {unknown[0]!r} in [model] belongs {_where(home[unknown[0]])}", path)
            if unknown:
                raise SpikeRegError(f"unknown key {unknown[0]!r} in [model] (U-Net architecture keys: "
                                    f"{', '.join(sorted(model_keys))})", path)
            flat["model"] = value
        elif name in tables:
            for key, item in value.items():
                _check_home(key, name, home, path)
                flat[key] = item
        else:
            raise SpikeRegError(f"unknown table [{name}] (tables: {', '.join(f'[{t}]' for t in tables)})", path)
    return flat


def _check_home(key: str, table: str, home: dict[str, str], path: Path) -> None:
    if key not in home:
        raise SpikeRegError(f"unknown key {key!r} {_where(table)} (keys there: "
                            f"{', '.join(TABLE_KEYS[table])})", path)
    if home[key] != table:
        raise SpikeRegError(f"key {key!r} {_where(table)} belongs {_where(home[key])}", path)
