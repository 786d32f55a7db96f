"""A float re-implementation of SpikeReg's forward pass, written from its description (alim98/SpikeReg, see
`spikereg_model.py`), used only to measure how far the imported integer network is from it.

What it computes, per the reference: the input is the rate of a Poisson encoding of clamp(x, 0, 1) over
`input_time_window` steps (here its expectation, clamp(x, 0, 1), unless `poisson_seed` is given); each encoder level
runs its own window on a static input (the previous level's spike rate), its LIF `u = tau u + BN(conv(x))`,
`spike = u >= v_th`, `u = v_reset` where spiking, with top-k lateral inhibition (the 10 % largest membranes of the
sample kept, the rest zeroed, before each step but the first) where SpikeReg has it, and a residual shortcut's
spikes added to the main path's; the bottleneck runs the last encoder window; each decoder block runs its window,
reading its input's step t (the last one once t runs past it), merging the encoder level's rate (concatenate,
average, none) before its refine conv; the output is the 1x1 projection of the last decoder's rate, smoothed by the
depthwise 3x3x3 conv, times displacement_scale. BN runs in eval mode (running statistics), in float64.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from spikereg_deploy.errors import SpikeRegError

from .spikereg_model import (
    BN_EPS,
    BOTTLENECK_TAU,
    DECODER_TAU,
    ENCODER_TAU,
    INHIBITION_K_FRACTION,
    SpikeRegCheckpoint,
    Unit,
    bottleneck_unit,
    decoder_levels,
    encoder_units,
    expected_shapes,
)


@dataclass
class ReferenceRun:
    """Spikes per layer ((steps, C, D, H, W), 0/1, steps = the layer's own window), each neuron's closest approach
    of its membrane to the threshold (min over steps of |u - v_th| before the reset), and the displacement."""

    spikes: dict[str, torch.Tensor] = field(default_factory=dict)
    margins: dict[str, torch.Tensor] = field(default_factory=dict)
    displacement: torch.Tensor | None = None  # (3, D, H, W), voxels


class _LIFConv:
    """One SpikeReg spiking conv: conv + eval-mode BN, then its LIF, stepped by hand."""

    def __init__(self, ckpt: SpikeRegCheckpoint, unit: Unit, inhibition: bool, biases: bool) -> None:
        p = {k: torch.as_tensor(v) for k, v in ckpt.unit_params(unit).items() if isinstance(v, np.ndarray)}
        scalars = ckpt.unit_params(unit)
        self.unit, self.inhibition = unit, inhibition and unit.inhibition
        self.weight = p["weight"]
        self.bias = p["bias"] if biases else torch.zeros_like(p["bias"])
        self.gain = p["bn_weight"] / torch.sqrt(p["bn_running_var"] + BN_EPS)
        self.shift = (p["bn_bias"] - p["bn_running_mean"] * self.gain) if biases else torch.zeros_like(self.gain)
        self.tau, self.v_th, self.v_reset = scalars["tau_u"], scalars["v_th"], scalars["v_reset"]
        self.membrane = torch.zeros(())
        self.margin: torch.Tensor | None = None

    def reset(self) -> None:
        self.membrane = torch.zeros(())  # SpikeReg resets to a 1-element state that broadcasts on the first step
        self.margin = None

    def current(self, x: torch.Tensor) -> torch.Tensor:
        u = self.unit
        if u.transposed:
            z = F.conv_transpose3d(x[None], self.weight, self.bias, stride=u.stride, padding=u.padding)[0]
        else:
            z = F.conv3d(x[None], self.weight, self.bias, stride=u.stride, padding=u.padding)[0]
        return z * self.gain.view(-1, 1, 1, 1) + self.shift.view(-1, 1, 1, 1)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        membrane = self.membrane
        if self.inhibition and membrane.dim() > 0:  # k-winner-take-all over the whole sample, as SpikeReg does
            flat = membrane.reshape(-1)
            k = max(1, int(INHIBITION_K_FRACTION * flat.numel()))
            mask = torch.zeros_like(flat)
            mask[torch.topk(flat, k).indices] = 1
            membrane = (flat * mask).view_as(membrane)
        membrane = self.tau * membrane + self.current(x)
        distance = (membrane - self.v_th).abs()
        self.margin = distance if self.margin is None else torch.minimum(self.margin, distance)
        spike = (membrane >= self.v_th).to(membrane.dtype)
        self.membrane = membrane * (1 - spike) + self.v_reset * spike
        return spike


def reference_forward(ckpt: SpikeRegCheckpoint, image: np.ndarray, *, inhibition: bool = True, biases: bool = True,
                      poisson_seed: int | None = None) -> ReferenceRun:
    """SpikeReg's forward on one (2, D, H, W) image pair in [0, 1]. `inhibition` / `biases` False switch those two
    constructs off (to measure how much of the difference each one makes)."""
    x = torch.as_tensor(np.asarray(image, dtype=np.float64)).clamp(0, 1)
    if poisson_seed is not None:
        gen = torch.Generator().manual_seed(poisson_seed)
        x = torch.stack([(torch.rand(x.shape, generator=gen, dtype=x.dtype) < x).to(x.dtype)
                         for _ in range(ckpt.input_window)]).mean(0)
    run = ReferenceRun()

    def record(unit: _LIFConv, frames: list[torch.Tensor]) -> None:
        run.spikes[unit.unit.name] = torch.stack(frames)
        assert unit.margin is not None
        run.margins[unit.unit.name] = unit.margin

    rates: list[torch.Tensor] = []
    for level, window in enumerate(ckpt.encoder_windows):
        units = [_LIFConv(ckpt, u, inhibition, biases) for u in encoder_units(level)]
        frames: dict[str, list[torch.Tensor]] = {u.unit.name: [] for u in units}
        for _t in range(window):
            for u in units:
                frames[u.unit.name].append(u.step(x))
        for u in units:
            record(u, frames[u.unit.name])
        x = sum(torch.stack(f) for f in frames.values()).mean(0)  # main + shortcut spikes, as a rate
        rates.append(x)
    bottleneck = _LIFConv(ckpt, bottleneck_unit(), inhibition, biases)
    steps = [bottleneck.step(x) for _ in range(ckpt.encoder_windows[-1])]
    record(bottleneck, steps)
    for dec, window in zip(decoder_levels(), ckpt.decoder_windows, strict=True):
        up, refine = (_LIFConv(ckpt, u, inhibition, biases) for u in (dec.upconv, dec.refine))
        skip = rates[dec.skip_level]
        up_frames, out = [], []
        for t in range(window):
            u_t = up.step(steps[min(t, len(steps) - 1)])
            up_frames.append(u_t)
            if dec.merge != "none" and u_t.shape[1:] != skip.shape[1:]:
                raise SpikeRegError(f"decoder {dec.index}: upsampled {tuple(u_t.shape[1:])} and skip "
                                    f"{tuple(skip.shape[1:])} differ; use sizes divisible by 16")
            if dec.merge == "concatenate":
                merged = torch.cat([u_t, skip])
            elif dec.merge == "average":
                merged = (u_t + skip) / 2
            else:
                merged = u_t
            out.append(refine.step(merged))
        record(up, up_frames)
        record(refine, out)
        steps = out
    t = ckpt.tensors
    rate = torch.stack(steps).mean(0)
    bias = torch.as_tensor(t["output_projection.conv.bias"]) if biases else None
    z = F.conv3d(rate[None], torch.as_tensor(t["output_projection.conv.weight"]), bias)
    z = F.conv3d(z, torch.as_tensor(t["output_projection.smooth.weight"]), padding=1, groups=3)
    run.displacement = z[0] * ckpt.displacement_scale
    return run


def random_state_dict(seed: int = 0, gain: float = 1.0) -> dict[str, torch.Tensor]:
    """A seeded random checkpoint with SpikeRegUNet's keys and shapes (no real SpikeReg checkpoint ships): convs as
    torch initialises them (uniform in +-gain / sqrt(fan_in)), BN statistics near identity, SpikeReg's default leaks
    per level, v_th 1, v_reset 0, the output's smoothing kernel 1/27."""
    gen = torch.Generator().manual_seed(seed)
    shapes = expected_shapes()
    taus = {f"encoder_blocks.{i}.": tau for i, tau in enumerate(ENCODER_TAU)}
    taus.update({f"decoder_blocks.{i}.": tau for i, tau in enumerate(DECODER_TAU)}, **{"bottleneck.": BOTTLENECK_TAU})

    def uniform(shape: tuple[int, ...], lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=torch.float32)

    state: dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        leaf = key.rsplit(".", 1)[-1]
        fan_in = int(np.prod(shapes[key.rsplit(".", 1)[0] + ".weight"][1:])) if key.endswith("conv.bias") else 0
        if key.endswith("conv.weight") or key.endswith("smooth.weight"):
            bound = gain / np.sqrt(int(np.prod(shape[1:])))  # torch's fan-in: dim 1 x kernel, conv and convT
            state[key] = uniform(shape, -bound, bound) if "smooth" not in key else torch.full(shape, 1 / 27)
        elif key.endswith("conv.bias"):
            state[key] = uniform(shape, -1 / np.sqrt(fan_in), 1 / np.sqrt(fan_in))
        elif leaf == "num_batches_tracked":
            state[key] = torch.tensor(100, dtype=torch.int64)
        elif key.endswith("bn.weight") or key.endswith("running_var"):
            state[key] = uniform(shape, 0.8, 1.2)
        elif key.endswith("bn.bias") or key.endswith("running_mean"):
            state[key] = 0.05 * torch.randn(shape, generator=gen)
        elif leaf == "tau_u":
            state[key] = torch.tensor(next(v for p, v in taus.items() if key.startswith(p)))
        elif leaf == "v_th":
            state[key] = torch.tensor(1.0)
        elif leaf == "v_reset":
            state[key] = torch.tensor(0.0)
        elif key == "spike_encoding_window":
            state[key] = torch.tensor(10)
        else:  # pragma: no cover - every key of expected_shapes() is one of the above
            raise AssertionError(key)
    return state
