"""Dask preload of the local cluster's workers (`distributed.worker.preload`): run in each worker process as it
starts, before any task. See `signals.become_task_worker`: Ctrl-C is the coordinator's, and a worker (with the
Lava processes its tasks fork) dies with the coordinator. Its temporary files (Lava's `spikereg-lava-*`,
multiprocessing's `pymp-*`) go to the coordinator's scratch folder for this cluster (Dask's `temporary-directory`,
set by `cluster.connect`), which it removes at the end, because a worker killed on Ctrl-C cannot remove them."""
from __future__ import annotations

import tempfile
from typing import Any

import dask

from ..signals import become_task_worker


def dask_setup(worker: Any) -> None:  # the hook name distributed calls in a preload module
    become_task_worker()
    tempfile.tempdir = dask.config.get("temporary-directory")
