"""spikereg-deploy: train, export, map, simulate and cost a spiking 3-D registration U-Net for Loihi."""
import threading

from tqdm import tqdm as _tqdm

# tqdm's default write lock is a multiprocessing RLock, and creating it fixes multiprocessing's start method;
# Lava then fails at import (it sets 'fork' itself) in any process that showed a progress bar first, e.g. a
# mapping before a simulation. A thread lock is all our single-process bars need.
_tqdm.set_lock(threading.RLock())
