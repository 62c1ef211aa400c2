"""Counter-based random numbers: any step's noise is a pure function of (seed, step, stream).

Philox (Salmon et al. 2011) is a counter-based generator: its output block k is a keyed bijection of
the counter k. We key it with the trajectory seed and start the counter at ``[0, 0, stream, step]``;
draws advance the lowest word only, so streams of different (step, stream) never overlap and
re-running a step after a crash reproduces its noise bit for bit, without replaying earlier steps.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

_U64 = 2**64


class Stream(IntEnum):
    """Independent purposes; each gets its own counter range per step."""

    INITIAL = 0
    SPIN_NOISE = 1
    LATTICE_NOISE = 2
    BAROSTAT_NOISE = 3


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    if not 0 <= int(seed) < _U64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return int(seed)


def generator(seed: int, step: int, stream: Stream | int) -> np.random.Generator:
    """A fresh generator for (seed, step, stream)."""
    seed = check_seed(seed)
    if not 0 <= int(step) < _U64:
        raise ValueError(f"step must be in [0, 2**64), got {step}")
    counter = np.array([0, 0, int(stream), int(step)], dtype=np.uint64)
    return np.random.Generator(np.random.Philox(key=seed, counter=counter))


def normals(seed: int, step: int, stream: Stream | int, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal deviates for (seed, step, stream)."""
    return generator(seed, step, stream).standard_normal(shape)
