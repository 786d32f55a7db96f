"""Training loops: the ANN teacher (stage `ann`) and SLAYER fine-tuning of the converted SNN (stage `snn`).

Both minimise -local NCC + diffusion; the SNN adds a spike-rate penalty and, optionally, a distillation term that
pulls its displacement toward the ANN teacher's (knowledge distillation for converted SNNs, e.g. Xu et al., CVPR 2023).
Checkpoints are atomic and carry optimizer and RNG state, so an interrupted run resumes where it stopped and gives
the same result as an uninterrupted one.
"""
from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spikereg_deploy.errors import SpikeRegError, read_toml
from spikereg_deploy.unet import UNetConfig

from .ann import AnnUNet
from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from .config_values import check_config_values
from .conversion import THRESHOLD_MAX, THRESHOLD_MIN, convert
from .losses import registration_loss, spike_rate
from .snn import SpikingUNet

WEIGHT_LIMIT = (-4.0, 254 / 64)  # keep float weights inside the 8-bit mantissa range (quantization-aware)


#: The TOML layout: each key of `TrainConfig` lives in exactly one place, the top level ("") or one table.
#: `[model]` holds `UNetConfig`'s fields (the architecture); the other tables hold the keys named here.
TOP_LEVEL = ""
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    TOP_LEVEL: ("stage", "seed", "shape", "init"),
    "data": ("data_seed_offset",),
    "optim": ("steps", "batch_size", "lr", "reg_weight", "sparsity_weight", "distill_weight", "teacher", "gain_lr",
              "threshold_lr", "ncc_window", "checkpoint_every"),
    "conversion": ("percentile", "normalisation", "calibration_pairs", "time_steps"),
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
    checkpoint_every: int = 50
    init: str = ""  # stage snn: ANN checkpoint to convert (or an SNN checkpoint to continue from)
    percentile: float = 99.9
    normalisation: str = "connection"
    calibration_pairs: int = 4
    time_steps: int = 0  # stage snn: T of the converted network (0 = the teacher config's T)
    data_seed_offset: int = 10_000  # training pairs use seeds >= this; evaluation uses lower seeds

    @classmethod
    def from_toml(cls, path: str | Path) -> TrainConfig:
        p = Path(path)
        flat = flatten_config_tables(read_toml(p, "config"), p)
        if isinstance(flat.get("shape"), list):
            flat["shape"] = tuple(flat["shape"])
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
        if self.distill_weight < 0 or self.sparsity_weight < 0 or self.reg_weight < 0:
            raise SpikeRegError("reg_weight, sparsity_weight and distill_weight must be >= 0")
        if self.distill_weight and self.stage != "snn":
            raise SpikeRegError("distill_weight is for stage snn (the ANN teacher is the distillation target)")
        if self.time_steps < 0:
            raise SpikeRegError("time_steps must be >= 0 (0 = the teacher's T)")
        if len(self.shape) != 3:
            raise SpikeRegError("shape must have three sizes")


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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pair_batches(cfg: TrainConfig, start_step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Fresh synthetic pairs every step (seeded by step): the same stream on resume."""
    from spikereg_deploy.imaging.synthetic import embedded_pairs

    step = start_step
    while True:
        pairs = embedded_pairs(cfg.batch_size, shape=cfg.shape, seed=cfg.data_seed_offset + step * cfg.batch_size)
        fixed = torch.as_tensor(np.stack([p.fixed for p in pairs]))[:, None].float()
        moving = torch.as_tensor(np.stack([p.moving for p in pairs]))[:, None].float()
        yield fixed, moving
        step += 1


def build_model(cfg: TrainConfig, log: Callable[[str], None]) -> AnnUNet | SpikingUNet:
    config = UNetConfig.from_dict(cfg.model)
    if cfg.stage == "ann":
        return AnnUNet(config)
    if not cfg.init:
        raise SpikeRegError("stage snn needs `init` (an ANN checkpoint to convert, or an SNN checkpoint)")
    kind = read_checkpoint(cfg.init)["kind"]
    if kind == "snn":
        log(f"continuing from SNN checkpoint {cfg.init}")
        return load_checkpoint(cfg.init, kind="snn")
    ann = load_checkpoint(cfg.init, kind="ann")
    if cfg.time_steps:  # rate precision is set by T: the same teacher converts at any T
        ann.config = replace(ann.config, time_steps=cfg.time_steps)
    calib_cfg = TrainConfig(**{**asdict(cfg), "batch_size": cfg.calibration_pairs})
    fixed, moving = next(pair_batches(calib_cfg, 0))
    snn, report = convert(ann, torch.cat([fixed, moving], 1), cfg.percentile, cfg.normalisation)
    for row in report:
        log(f"converted {row.name}: threshold {row.threshold:.3f}, rate {100 * row.rate:.1f} % "
            f"(target {100 * row.target_rate:.1f} %)")
    return snn


def load_teacher(cfg: TrainConfig) -> AnnUNet | None:
    """The frozen ANN whose displacement the SNN is distilled toward (None when distillation is off)."""
    if cfg.stage != "snn" or not cfg.distill_weight:
        return None
    path = cfg.teacher or cfg.init
    if not path or read_checkpoint(path)["kind"] != "ann":
        raise SpikeRegError("distill_weight needs an ANN teacher: set `teacher`, or `init` to an ANN checkpoint")
    teacher = load_checkpoint(path, kind="ann").eval()
    for param in teacher.parameters():
        param.requires_grad_(False)
    return teacher


#: What conversion or training sets in a checkpoint's model config, so a config's value need not match it.
_SET_BY_TRAINING = ("thresholds", "threshold", "readout_gain", "time_steps")


def _check_same_run(payload: dict[str, Any], cfg: TrainConfig, out: Path) -> None:
    """Refuse to resume (or call finished) a checkpoint that another config made: another stage's model, or
    another architecture. Silently continuing it would train, or keep, a model other than the one asked for."""
    if payload["kind"] != cfg.stage:
        raise SpikeRegError(f"holds a finished or started stage-{payload['kind']} model, the config trains stage "
                            f"{cfg.stage}; give another -o, or --fresh to replace it", out)
    try:
        held = UNetConfig.from_dict(payload["config"]).to_dict()
    except (SpikeRegError, TypeError, ValueError) as err:
        raise SpikeRegError(f"invalid model config: {err}", out) from None
    asked = UNetConfig.from_dict(cfg.model).to_dict()
    # stage ann: the whole architecture is the config's; stage snn: the model comes from `init`, so only the keys
    # the config names are compared (and T when the config sets it)
    keys = [k for k in asked if k not in _SET_BY_TRAINING] if cfg.stage == "ann" else \
        [k for k in cfg.model if k not in _SET_BY_TRAINING]
    if cfg.stage == "ann" or cfg.time_steps:
        keys.append("time_steps")
        if cfg.stage == "snn":
            asked["time_steps"] = cfg.time_steps
    for key in keys:
        if held.get(key) != asked.get(key):
            raise SpikeRegError(f"holds a model with {key} = {held.get(key)!r}, the config asks for "
                                f"{asked.get(key)!r}; give another -o, or --fresh to replace it", out)


def train(cfg: TrainConfig, out: str | Path, resume: bool = True, progress: bool = True,
          log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> dict[str, Any]:
    """Run the configured stage; returns the loss history. `out` is the checkpoint path (written atomically)."""
    out = Path(out)
    seed_everything(cfg.seed)
    start = 0
    state: dict[str, Any] = {}
    if resume and out.exists():
        payload = read_checkpoint(out)
        _check_same_run(payload, cfg, out)
        state = payload.get("training_state") or {}
        if state.get("finished") and int(state.get("step", 0)) >= cfg.steps:
            log(f"{out} is a finished run of {state.get('step')} steps; nothing to do")
            return state
        model = load_checkpoint(out, kind=cfg.stage)
        start = int(state.get("step", 0))
        log(f"resuming {out} at step {start}")
    else:
        model = build_model(cfg, log)
    model.train()
    log_gain = torch.nn.Parameter(torch.zeros(()))  # readout gain = gain at this step's start x exp(log_gain)
    probes = LearnedThresholds(model) if isinstance(model, SpikingUNet) and cfg.threshold_lr else None
    groups: list[dict[str, Any]] = [{"params": list(model.parameters())}]
    if isinstance(model, SpikingUNet) and cfg.gain_lr:
        groups.append({"params": [log_gain], "lr": cfg.gain_lr})
    if probes is not None:
        groups.append({"params": list(probes.values()), "lr": cfg.threshold_lr})
    optimizer = torch.optim.Adam(groups, lr=cfg.lr)
    if state.get("optimizer"):
        try:
            optimizer.load_state_dict(state["optimizer"])
        except ValueError:  # e.g. gain_lr switched on or off between the run and its resumption
            raise SpikeRegError("its optimizer state does not match this config (gain_lr or threshold_lr changed?); "
                                "rerun with --fresh or the original config", out) from None
    if state.get("torch_rng") is not None:
        torch.random.set_rng_state(state["torch_rng"])
    history: list[dict[str, float]] = list(state.get("history", []))
    teacher = load_teacher(cfg)
    batches = pair_batches(cfg, start)
    steps = range(start, cfg.steps)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc=f"train {cfg.stage}", unit="step", initial=start, total=cfg.steps)
    started = time.perf_counter()
    for step in steps:
        fixed, moving = next(batches)
        loss, parts = training_step(model, optimizer, fixed, moving, cfg, teacher, log_gain if cfg.gain_lr else None,
                                    probes)
        history.append({"step": step + 1, "loss": float(loss), **parts})
        if progress and hasattr(steps, "set_postfix"):
            steps.set_postfix(loss=f"{float(loss):.4f}", ncc=f"{parts['ncc']:.3f}")
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            _save(out, model, optimizer, step + 1, history, cfg, finished=False)
    meta = {"stage": cfg.stage, "steps": cfg.steps, "config": asdict(cfg),
            "train_seconds": round(time.perf_counter() - started, 1)}
    _save(out, model, optimizer, cfg.steps, history, cfg, finished=True, meta=meta)
    return {"history": history, "meta": meta}


def training_step(model: AnnUNet | SpikingUNet, optimizer: torch.optim.Optimizer, fixed: torch.Tensor,
                  moving: torch.Tensor, cfg: TrainConfig,
                  teacher: AnnUNet | None = None,
                  log_gain: torch.nn.Parameter | None = None,
                  thresholds: LearnedThresholds | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """One optimizer step. With `log_gain` (in the optimizer) the SNN's readout gain learns from the same loss:
    the gain is a host-side float on the integer readout sum, so the exported network stays the trained one.
    Rate-coded readouts carry quantization noise that the diffusion term penalises; the gain trades the two.
    With `thresholds` each spiking layer's threshold learns too (a finer knob than 8-bit weights)."""
    image = torch.cat([fixed, moving], dim=1)
    optimizer.zero_grad(set_to_none=True)
    if isinstance(model, SpikingUNet):
        if thresholds is not None:
            thresholds.zero_()
        result = model(image, threshold_probes=thresholds)
        disp = result.displacement
        if log_gain is not None:
            with torch.no_grad():
                log_gain.zero_()  # the model holds the gain; this parameter carries one step's change
            disp = disp * torch.exp(log_gain)
        loss, parts = registration_loss(fixed, moving, disp, cfg.reg_weight, cfg.ncc_window)
        rate = spike_rate(result.spikes)
        loss = loss + cfg.sparsity_weight * rate
        parts["spike_rate"] = float(rate)
        if teacher is not None and cfg.distill_weight:
            with torch.no_grad():
                target = teacher(image)
            gap = (disp - target).pow(2).mean()
            loss = loss + cfg.distill_weight * gap
            parts["distill"] = float(gap)
    else:
        disp = model(image)
        loss, parts = registration_loss(fixed, moving, disp, cfg.reg_weight, cfg.ncc_window)
    loss.backward()
    optimizer.step()
    if isinstance(model, SpikingUNet):
        with torch.no_grad():
            for syn in model.synapses.values():
                syn.weight.clamp_(*WEIGHT_LIMIT)
        if log_gain is not None:
            model.set_readout_gain(model.config.readout_gain * float(torch.exp(log_gain)))
            parts["readout_gain"] = model.config.readout_gain
        if thresholds is not None:
            thresholds.apply_to(model)
            parts.update({f"threshold_{n}": model.threshold_of(n) for n in thresholds})
    return loss.detach(), parts


class LearnedThresholds(dict):
    """One zero-valued log-threshold probe per spiking layer (see `SpikingUNet.forward`).

    Like the readout gain, the model holds the value and the probe carries one step's change, so the optimizer's
    moments survive while the thresholds themselves live in the model config (and its checkpoint)."""

    def __init__(self, model: SpikingUNet) -> None:
        super().__init__({name: torch.nn.Parameter(torch.zeros(())) for name in model.neurons})

    def zero_(self) -> None:
        with torch.no_grad():
            for probe in self.values():
                probe.zero_()

    def apply_to(self, model: SpikingUNet) -> None:
        model.set_thresholds({name: float(np.clip(model.threshold_of(name) * float(torch.exp(p)), THRESHOLD_MIN,
                                                  THRESHOLD_MAX)) for name, p in self.items()})


def _save(out: Path, model, optimizer, step: int, history, cfg: TrainConfig, finished: bool,
          meta: dict[str, Any] | None = None) -> None:
    state = {"step": step, "optimizer": optimizer.state_dict(), "history": history,
             "torch_rng": torch.random.get_rng_state(), "finished": finished}
    save_checkpoint(out, model, meta=meta or {"stage": cfg.stage}, training_state=state)
