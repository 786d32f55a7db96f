"""The core map PNG of a mapping document: cores coloured by layer, and each resource's utilisation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .tiling import RESOURCE_LABELS, RESOURCES


def render_png(
    doc: dict[str, Any],
    path: str | Path,
    profile_mesh: tuple[int, int],
    cores_per_router: int,
    usage: dict[str, np.ndarray],
) -> None:
    """Core map coloured by layer, and one map per resource of each core's utilisation, written to `path` as it
    is: the caller hands in a staged file (`write_outputs` stages all three outputs together)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    blocks = np.asarray(doc["blocks"], dtype=np.int64)
    sub = math.ceil(math.sqrt(cores_per_router))
    gr, gc = doc["chip_grid"]
    rows, cols = gr * profile_mesh[0] * sub, gc * profile_mesh[1] * sub
    chip_pos = np.asarray(doc["chip_positions"], dtype=np.int64)
    router, within = np.divmod(blocks[:, 10], cores_per_router)
    r = (chip_pos[blocks[:, 9], 0] * profile_mesh[0] + router // profile_mesh[1]) * sub + within // sub
    c = (chip_pos[blocks[:, 9], 1] * profile_mesh[1] + router % profile_mesh[1]) * sub + within % sub
    fig, axes = plt.subplots(1, 5, figsize=(24, 5.5), constrained_layout=True)
    layer_map = np.full((rows, cols), np.nan)
    layer_map[r, c] = blocks[:, 0]
    names = [lt["name"] for lt in doc["layers"]]
    cmap = ListedColormap(plt.get_cmap("tab20").colors[: max(len(names), 1)])
    im = axes[0].imshow(layer_map, cmap=cmap, vmin=-0.5, vmax=len(names) - 0.5, interpolation="nearest")
    bar = fig.colorbar(im, ax=axes[0], ticks=range(len(names)), shrink=0.8)
    bar.ax.set_yticklabels(names)
    axes[0].set_title(f"{doc['cores_used']:,} cores on {doc['chips_used']:,} chips (by layer)")
    for ax, res in zip(axes[1:], RESOURCES, strict=True):
        grid = np.full((rows, cols), np.nan)
        grid[r, c] = usage[res]
        im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{RESOURCE_LABELS[res]}: fraction of limit")
        fig.colorbar(im, ax=ax, shrink=0.8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
        for k in range(1, gr):  # chip boundaries
            ax.axhline(k * profile_mesh[0] * sub - 0.5, color="0.3", lw=0.3)
        for k in range(1, gc):
            ax.axvline(k * profile_mesh[1] * sub - 0.5, color="0.3", lw=0.3)
    try:
        fig.savefig(path, dpi=90, format="png")
    finally:
        plt.close(fig)
