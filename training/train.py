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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spikereg_deploy.errors import SpikeRegError
from spikereg_deploy.torch_device import torch_device
from spikereg_deploy.unet import UNetConfig

from .ann import AnnUNet
from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from .conversion import THRESHOLD_MAX, THRESHOLD_MIN, convert, percentile_of
from .losses import registration_loss, spike_rate
from .snn import SpikingUNet
from .train_config import TABLE_KEYS, TrainConfig, flatten_config_tables

__all__ = ["TABLE_KEYS", "TrainConfig", "flatten_config_tables", "train", "training_step", "LearnedThresholds"]

WEIGHT_LIMIT = (-4.0, 254 / 64)  # keep float weights inside the 8-bit mantissa range (quantization-aware)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pair_batches(cfg: TrainConfig, start_step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Fresh synthetic pairs every step (seeded by step): the same stream on resume. `data_source` "embedded":
    MNI152 pairs on the network grid; "synth": label-synthesised patches (`cfg.shape`) at `cfg.spacing` mm."""
    from spikereg_deploy.imaging.label_synth import label_synth_pair
    from spikereg_deploy.imaging.synthetic import embedded_pairs

    synth = cfg.synth_config() if cfg.data_source == "synth" else None
    with_labels = cfg.label_weight > 0  # then each batch also carries its pairs' label maps (fixed, moving)
    step = start_step * cfg.accumulate  # one batch per accumulated micro-step, so a resume draws the same pairs
    while True:
        if synth is not None:
            pairs = [label_synth_pair(step * cfg.batch_size + j, cfg.shape, cfg.data_seed_offset, synth)
                     for j in range(cfg.batch_size)]
        else:
            pairs = embedded_pairs(cfg.batch_size, shape=cfg.shape,
                                   seed=cfg.data_seed_offset + step * cfg.batch_size)
        fixed = torch.as_tensor(np.stack([p.fixed for p in pairs]))[:, None].float()
        moving = torch.as_tensor(np.stack([p.moving for p in pairs]))[:, None].float()
        if with_labels:
            if any(p.fixed_labels is None or p.moving_labels is None for p in pairs):
                raise SpikeRegError(f"label_weight needs label maps; data_source {cfg.data_source!r} has none")
            yield (fixed, moving, *(torch.as_tensor(np.stack([getattr(p, k) for p in pairs]).astype(np.int64))[:, None]
                                    for k in ("fixed_labels", "moving_labels")))
        else:
            yield fixed, moving
        step += 1


#: `[model]` keys a conversion may set for the SNN (its neurons, T, input); the architecture is the teacher's.
SNN_MODEL_KEYS = ("neuron_model", "current_decay", "voltage_decay", "half_threshold_start", "input_mode",
                  "threshold", "time_steps", "payload_bits", "max_payload")


def build_model(cfg: TrainConfig, log: Callable[[str], None]) -> AnnUNet | SpikingUNet:
    config = UNetConfig.from_dict(cfg.model)
    if cfg.stage == "ann":
        ann = AnnUNet(config)
        if cfg.init:
            start_teacher_from(ann, cfg, log)
        return ann
    if not cfg.init:
        raise SpikeRegError("stage snn needs `init` (an ANN checkpoint to convert, or an SNN checkpoint)")
    kind = read_checkpoint(cfg.init)["kind"]
    if kind == "snn":
        log(f"continuing from SNN checkpoint {cfg.init}")
        return load_checkpoint(cfg.init, kind="snn")
    ann = load_checkpoint(cfg.init, kind="ann")
    fixed, moving = calibration_pairs(cfg)
    snn, report = convert(ann, torch.cat([fixed, moving], 1), cfg.percentile, cfg.normalisation,
                          snn_config=snn_config_for(ann.config, cfg), threshold_scale=cfg.threshold_scale)
    for row in report:
        log(f"converted {row.name}: threshold {row.threshold:.3f}, rate {100 * row.rate:.1f} % "
            f"(target {100 * row.target_rate:.1f} %)")
    return snn


def calibration_pairs(cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `calibration_pairs` training pairs (fixed, moving): what conversion's statistics are taken on."""
    fixed, moving, *_ = next(pair_batches(TrainConfig(**{**asdict(cfg), "batch_size": cfg.calibration_pairs}), 0))
    return fixed, moving


def snn_config_for(teacher: UNetConfig, cfg: TrainConfig) -> UNetConfig:
    """The converted SNN's config: the teacher's architecture with the `[model]` neuron keys and T of `cfg`
    (rate precision is set by T: the same teacher converts at any T)."""
    other = sorted(k for k, v in cfg.model.items() if k not in SNN_MODEL_KEYS and getattr(teacher, k) != v)
    if other:
        raise SpikeRegError(f"[model] {other[0]} = {cfg.model[other[0]]!r} differs from the teacher's "
                            f"{getattr(teacher, other[0])!r} (conversion keeps the architecture; it sets only "
                            f"{', '.join(SNN_MODEL_KEYS)})")
    changes = {k: v for k, v in cfg.model.items() if k in SNN_MODEL_KEYS}
    if cfg.time_steps:
        changes["time_steps"] = cfg.time_steps
    return replace(teacher, **changes)


def start_teacher_from(ann: AnnUNet, cfg: TrainConfig, log: Callable[[str], None]) -> None:
    """Stage ann with `init`: fine-tune a teacher from another one of the same architecture, e.g. a ReLU teacher
    into a QCFS one; each new clip starts at the old activation's `percentile` on the calibration pairs."""
    source = load_checkpoint(cfg.init, kind="ann")
    if source.spec.architecture_fingerprint() != ann.spec.architecture_fingerprint():
        raise SpikeRegError(f"init {cfg.init} has another architecture than the config's [model]")
    ann.convs.load_state_dict(source.convs.state_dict())
    if not ann.activations:
        return
    if source.activations:  # a QCFS teacher at other levels: its learned clips are the best start
        clips = source.clips()
    else:
        fixed, moving = calibration_pairs(cfg)
        with torch.no_grad():
            _, acts = source.eval()(torch.cat([fixed, moving], 1), return_activations=True)
        clips = {name: percentile_of(acts[name], cfg.percentile) for name in ann.activations}
    for name, act in ann.activations.items():
        act.set_clip(clips[name])
    log("QCFS clips from " + cfg.init + ": " + ", ".join(f"{n} {c:.3f}" for n, c in ann.clips().items()))


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
        if key == "max_payload" and asked.get(key) == 0:
            continue  # 0 asks conversion to choose (the teacher's levels): whatever it chose is what was asked
        if held.get(key) != asked.get(key):
            raise SpikeRegError(f"holds a model with {key} = {held.get(key)!r}, the config asks for "
                                f"{asked.get(key)!r}; give another -o, or --fresh to replace it", out)
    stored = (payload.get("training_state") or {}).get("data")  # checkpoints from before it lack it
    if stored is not None:
        defaults = data_settings(TrainConfig())  # a key newer than the checkpoint: it ran with the default
        for key, value in data_settings(cfg).items():
            held = stored.get(key, defaults[key])
            if held != value:
                raise SpikeRegError(f"was trained on data with {key} = {held!r}, the config asks for "
                                    f"{value!r}: resuming would change the pair stream; give another -o, or "
                                    "--fresh to replace it", out)


def data_settings(cfg: TrainConfig) -> dict[str, Any]:
    """What decides the training pair stream (the `[data]` table and the patch shape), as plain values."""
    keys = ("shape", *TABLE_KEYS["data"])
    return {key: list(value) if isinstance(value, tuple) else value for key in keys
            if (value := getattr(cfg, key)) is not None}


def train(cfg: TrainConfig, out: str | Path, resume: bool = True, progress: bool = True,
          log: Callable[[str], None] = lambda m: print(m, file=sys.stderr), device: str = "cpu") -> dict[str, Any]:
    """Run the configured stage; returns the loss history. `out` is the checkpoint path (written atomically).
    `device` ("cpu", "cuda[:N]") is where the model trains; conversion's calibration runs on the CPU first."""
    out = Path(out)
    dev = torch_device(device)  # before any work: a missing GPU is one line, not a failure after conversion
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
    model.to(dev).train()
    log_gain = torch.nn.Parameter(torch.zeros(()))  # readout gain = gain at this step's start x exp(log_gain)
    if isinstance(model, SpikingUNet) and cfg.threshold_lr and model.config.neuron_model == "SDNN":
        raise SpikeRegError("threshold_lr: a learned threshold scales the input of a rate-coded neuron; a sigma-delta "
                            "threshold is not such a scale (lava-dl learns none by default): set threshold_lr = 0")
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
    if teacher is not None:
        teacher.to(dev)
    batches = pair_batches(cfg, start)
    steps = range(start, cfg.steps)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc=f"train {cfg.stage}", unit="step", initial=start, total=cfg.steps)
    started = time.perf_counter()
    for step in steps:
        micro = [tuple(t.to(dev) for t in next(batches)) for _ in range(cfg.accumulate)]
        loss, parts = training_step(model, optimizer, micro[0][0], micro[0][1], cfg, teacher,
                                    log_gain if cfg.gain_lr else None, probes, more_batches=micro[1:],
                                    labels=micro[0][2:] or None)
        history.append({"step": step + 1, "loss": float(loss), **parts})
        if progress and hasattr(steps, "set_postfix"):
            steps.set_postfix(loss=f"{float(loss):.4f}", ncc=f"{parts['ncc']:.3f}")
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            _save(out, model, optimizer, step + 1, history, cfg, finished=False)
    meta = {"stage": cfg.stage, "steps": cfg.steps, "config": asdict(cfg),
            "train_seconds": round(time.perf_counter() - started, 1), "device": str(dev)}
    _save(out, model, optimizer, cfg.steps, history, cfg, finished=True, meta=meta)
    return {"history": history, "meta": meta}


def training_step(model: AnnUNet | SpikingUNet, optimizer: torch.optim.Optimizer, fixed: torch.Tensor,
                  moving: torch.Tensor, cfg: TrainConfig,
                  teacher: AnnUNet | None = None,
                  log_gain: torch.nn.Parameter | None = None,
                  thresholds: LearnedThresholds | None = None,
                  more_batches: Sequence[tuple[torch.Tensor, ...]] = (),
                  labels: tuple[torch.Tensor, ...] | None = None,
                  ) -> tuple[torch.Tensor, dict[str, float]]:
    """One optimizer step. With `log_gain` (in the optimizer) the SNN's readout gain learns from the same loss:
    the gain is a host-side float on the integer readout sum, so the exported network stays the trained one.
    Rate-coded readouts carry quantization noise that the diffusion term penalises; the gain trades the two.
    With `thresholds` each spiking layer's threshold learns too (a finer knob than 8-bit weights).
    `more_batches` are accumulated into the same step: the loss and parts are the batches' means. `labels`
    (fixed, moving label maps; in `more_batches` as items 3 and 4) feed `label_weight`'s label term."""
    optimizer.zero_grad(set_to_none=True)
    batches = [(fixed, moving, *(labels or ())), *more_batches]
    total: dict[str, float] = {}
    loss_sum = torch.zeros((), device=fixed.device)
    for fixed_b, moving_b, *labels_b in batches:
        loss, parts = _batch_loss(model, fixed_b, moving_b, cfg, teacher, log_gain, thresholds,
                                  (labels_b[0], labels_b[1]) if labels_b else None)
        (loss / len(batches)).backward()
        loss_sum += loss.detach() / len(batches)
        for key, value in parts.items():
            total[key] = total.get(key, 0.0) + value / len(batches)
    optimizer.step()
    _after_step(model, log_gain, thresholds, total)
    return loss_sum, total


def _batch_loss(model: AnnUNet | SpikingUNet, fixed: torch.Tensor, moving: torch.Tensor, cfg: TrainConfig,
                teacher: AnnUNet | None, log_gain: torch.nn.Parameter | None,
                thresholds: LearnedThresholds | None, labels: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of one batch and its parts (floats)."""
    image = torch.cat([fixed, moving], dim=1)
    if isinstance(model, SpikingUNet):
        if thresholds is not None:
            thresholds.zero_()
        result = model(image, threshold_probes=thresholds)
        disp = result.displacement
        if log_gain is not None:
            with torch.no_grad():
                log_gain.zero_()  # the model holds the gain; this parameter carries one step's change
            disp = disp * torch.exp(log_gain)
        loss, parts = registration_loss(fixed, moving, disp, cfg.reg_weight, cfg.ncc_window, labels,
                                        cfg.label_weight)
        units = {name: unit for name in result.spikes
                 if (unit := getattr(model.spec.layer(name).neuron, "payload_unit", 1)) != 1}
        rate = spike_rate(result.spikes, units)
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
        loss, parts = registration_loss(fixed, moving, disp, cfg.reg_weight, cfg.ncc_window, labels,
                                        cfg.label_weight)
    return loss, parts


def _after_step(model: AnnUNet | SpikingUNet, log_gain: torch.nn.Parameter | None,
                thresholds: LearnedThresholds | None, parts: dict[str, float]) -> None:
    """What an optimizer step changes outside the weights: clamps, the readout gain, the thresholds."""
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
             "torch_rng": torch.random.get_rng_state(), "finished": finished, "data": data_settings(cfg)}
    save_checkpoint(out, model, meta=meta or {"stage": cfg.stage}, training_state=state)
