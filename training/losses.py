"""Registration losses: local NCC (window 9), diffusion regularisation, spike-rate sparsity; differentiable warping."""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F


def identity_grid(shape: tuple[int, int, int], device: torch.device | None = None) -> torch.Tensor:
    """Voxel coordinates (3, D, H, W) of a grid."""
    axes = [torch.arange(n, dtype=torch.float32, device=device) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))


def warp(moving: torch.Tensor, disp: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """warped(x) = moving(x + disp(x)); moving (N, C, D, H, W), disp (N, 3, D, H, W) in voxels (border clamp)."""
    shape = tuple(moving.shape[2:])
    coords = identity_grid(shape, moving.device)[None] + disp
    sizes = torch.tensor([max(n - 1, 1) for n in shape], dtype=disp.dtype, device=disp.device).view(1, 3, 1, 1, 1)
    norm = 2 * coords / sizes - 1
    grid = norm.permute(0, 2, 3, 4, 1).flip(-1)  # grid_sample wants (x=W, y=H, z=D)
    return F.grid_sample(moving, grid, mode=mode, padding_mode="border", align_corners=True)


def local_ncc(fixed: torch.Tensor, warped: torch.Tensor, window: int = 9, eps: float = 1e-5) -> torch.Tensor:
    """Mean local normalised cross-correlation over a cubic window (VoxelMorph's definition); higher is better."""
    kernel = torch.ones((1, 1, window, window, window), dtype=fixed.dtype, device=fixed.device)
    pad = window // 2
    n = float(window ** 3)

    def box(x: torch.Tensor) -> torch.Tensor:
        return F.conv3d(x, kernel, padding=pad)

    f_sum, w_sum = box(fixed), box(warped)
    ff, ww, fw = box(fixed * fixed), box(warped * warped), box(fixed * warped)
    cross = fw - f_sum * w_sum / n
    f_var = ff - f_sum * f_sum / n
    w_var = ww - w_sum * w_sum / n
    cc = cross * cross / (f_var * w_var + eps)
    return cc.mean()


def diffusion(disp: torch.Tensor) -> torch.Tensor:
    """Mean squared spatial gradient of the displacement (forward differences), voxels^2 per voxel^2."""
    dz = disp[:, :, 1:] - disp[:, :, :-1]
    dy = disp[:, :, :, 1:] - disp[:, :, :, :-1]
    dx = disp[:, :, :, :, 1:] - disp[:, :, :, :, :-1]
    return (dz.pow(2).mean() + dy.pow(2).mean() + dx.pow(2).mean()) / 3


def spike_rate(spikes: dict[str, torch.Tensor], units: Mapping[str, float] | None = None) -> torch.Tensor:
    """Mean spike rate over all spiking neurons and steps (a differentiable surrogate through SLAYER's spikes).
    Layers in `units` (sigma-delta: signed payloads, `payload_unit` = 2^12 of them to a unit of activation) count
    |payload| / unit, the mean |delta| (an L1 on the deltas); the others their outputs as they are (abs would cut
    the surrogate gradient of a spike at 0)."""
    units = units or {}
    total = sum(s.abs().sum() / units[name] if name in units else s.sum() for name, s in spikes.items())
    count = sum(s.numel() for s in spikes.values())
    return total / count


def soft_label_dice(fixed_labels: torch.Tensor, moving_labels: torch.Tensor, disp: torch.Tensor,
                    eps: float = 1e-5) -> torch.Tensor:
    """Mean soft Dice between the fixed label map and the moving one warped by `disp` (both (N, 1, D, H, W)
    integer maps), each label one-hot and warped trilinearly, over the labels present in either map.

    SynthMorph's loss (Hoffmann et al., IEEE TMI 2022): it rewards moving anatomy onto anatomy rather than
    intensity onto intensity, which is what label overlap, the benchmark's measure, asks of a field.
    """
    classes = int(max(int(fixed_labels.max()), int(moving_labels.max()))) + 1
    fixed_hot = F.one_hot(fixed_labels[:, 0].long(), classes).permute(0, 4, 1, 2, 3).to(disp.dtype)
    moving_hot = F.one_hot(moving_labels[:, 0].long(), classes).permute(0, 4, 1, 2, 3).to(disp.dtype)
    warped = warp(moving_hot, disp)
    dims = (2, 3, 4)
    overlap = (fixed_hot * warped).sum(dims)
    sizes = fixed_hot.sum(dims) + warped.sum(dims)
    present = (fixed_hot.sum(dims) + moving_hot.sum(dims)) > 0
    dice = (2 * overlap + eps) / (sizes + eps)
    return dice[present].mean()


def registration_loss(fixed: torch.Tensor, moving: torch.Tensor, disp: torch.Tensor, reg_weight: float,
                      window: int = 9, labels: tuple[torch.Tensor, torch.Tensor] | None = None,
                      label_weight: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """-NCC(fixed, moving o phi) + reg_weight * diffusion(disp) [+ label_weight * (1 - soft label Dice)]."""
    warped = warp(moving, disp)
    ncc = local_ncc(fixed, warped, window)
    reg = diffusion(disp)
    loss = -ncc + reg_weight * reg
    parts = {"ncc": float(ncc), "diffusion": float(reg)}
    if label_weight and labels is not None:
        dice = soft_label_dice(labels[0], labels[1], disp)
        loss = loss + label_weight * (1 - dice)
        parts["label_dice"] = float(dice)
    return loss, parts
