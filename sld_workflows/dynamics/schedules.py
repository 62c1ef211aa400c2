"""Temperature schedules: T(t) as piecewise-linear functions of simulation time (fs)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from monty.json import MSONable


@dataclasses.dataclass(frozen=True)
class TemperatureSchedule(MSONable):
    """Piecewise-linear T(t): ``points`` are (time_fs, temperature_k), times strictly increasing.
    Before the first point and after the last the end values hold."""

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        pts = tuple((float(t), float(temp)) for t, temp in self.points)
        if not pts:
            raise ValueError("temperature schedule needs at least one (time_fs, temperature_k) point")
        times = [t for t, _ in pts]
        if any(b <= a for a, b in zip(times, times[1:], strict=False)):
            raise ValueError(f"temperature schedule times must increase strictly, got {times}")
        for _, temp in pts:
            if not np.isfinite(temp) or temp < 0:
                raise ValueError(f"temperature must be >= 0 K, got {temp}")
        object.__setattr__(self, "points", pts)

    def __call__(self, time_fs: float) -> float:
        times, temps = zip(*self.points, strict=True)
        return float(np.interp(time_fs, times, temps))

    @classmethod
    def constant(cls, temperature_k: float) -> TemperatureSchedule:
        return cls(((0.0, temperature_k),))

    @classmethod
    def ramp(cls, start_k: float, end_k: float, duration_fs: float, start_fs: float = 0.0) -> TemperatureSchedule:
        """Linear from ``start_k`` at ``start_fs`` to ``end_k`` at ``start_fs + duration_fs``, then hold."""
        if duration_fs <= 0:
            raise ValueError(f"ramp duration_fs must be > 0, got {duration_fs}")
        return cls(((start_fs, start_k), (start_fs + duration_fs, end_k)))

    @classmethod
    def from_spec(cls, spec: float | int | dict[str, Any] | Sequence) -> TemperatureSchedule:
        """Accept ``300``, ``{"constant": 300}``, ``{"ramp": {"start_k":50,"end_k":5,"duration_fs":1000}}``
        or ``{"points": [[0, 50], [1000, 5]]}``."""
        if isinstance(spec, bool):
            raise ValueError("temperature must be a number or a schedule mapping, got a boolean")
        if isinstance(spec, int | float):
            return cls.constant(spec)
        if isinstance(spec, dict):
            if "points" in spec and "@class" in spec:
                return cls(tuple(tuple(p) for p in spec["points"]))
            if len(spec) != 1:
                raise ValueError(f"temperature schedule needs exactly one of constant/ramp/points, got {sorted(spec)}")
            (kind, value), = spec.items()
            if kind == "constant":
                return cls.constant(value)
            if kind == "ramp":
                if not isinstance(value, dict):
                    raise ValueError("temperature ramp must be a mapping with start_k, end_k, duration_fs")
                unknown = set(value) - {"start_k", "end_k", "duration_fs", "start_fs"}
                if unknown:
                    raise ValueError(f"temperature ramp: unknown keys {sorted(unknown)}")
                try:
                    return cls.ramp(**value)
                except TypeError as exc:
                    raise ValueError(f"temperature ramp needs start_k, end_k, duration_fs ({exc})") from exc
            if kind == "points":
                return cls(tuple(tuple(p) for p in value))
            raise ValueError(f"unknown temperature schedule kind {kind!r} (constant, ramp, points)")
        raise ValueError(f"temperature must be a number or a schedule mapping, got {type(spec).__name__}")

    def as_dict(self) -> dict[str, Any]:
        points = [list(p) for p in self.points]
        return {"@module": type(self).__module__, "@class": type(self).__name__, "points": points}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TemperatureSchedule:
        return cls(tuple(tuple(p) for p in d["points"]))
