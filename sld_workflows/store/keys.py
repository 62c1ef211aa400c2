"""Names shared by the store, the tasks and the commands: frame kinds, statuses, Firework-spec keys.

One home for each (issue 8): a frame kind or a status is an enum member (a ``StrEnum``, so it is
stored and compared as its plain string), and every query on the SLD part of a Firework spec is
built here rather than spelling ``spec.sld.trajectory`` at each call site.
"""

from __future__ import annotations

import enum
from typing import Any


class FrameKind(enum.StrEnum):
    """Kinds of stored frames (see :mod:`sld_workflows.workflows.phases` for the flow of one step)."""

    STATE = "state"
    EVALUATION = "evaluation"
    PROVISIONAL_STATE = "provisional_state"
    MIDPOINT_STATE = "midpoint_state"
    MIDPOINT_EVALUATION = "midpoint_evaluation"

    @property
    def is_evaluation(self) -> bool:
        return self in EVALUATION_KINDS


#: kinds that hold an engine evaluation (the others hold an :class:`~sld_workflows.state.SLDState`)
EVALUATION_KINDS = frozenset({FrameKind.EVALUATION, FrameKind.MIDPOINT_EVALUATION})


class TrajectoryStatus(enum.StrEnum):
    """``status`` of a trajectory document."""

    READY = "READY"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    STOPPED = "STOPPED"
    FIZZLED = "FIZZLED"


class FireworkState(enum.StrEnum):
    """The FireWorks states we query (FireWorks' own strings)."""

    READY = "READY"
    WAITING = "WAITING"
    RESERVED = "RESERVED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    FIZZLED = "FIZZLED"
    ARCHIVED = "ARCHIVED"
    DEFUSED = "DEFUSED"


#: Fireworks in these states will still run (or are running)
ACTIVE_FIREWORK_STATES = (FireworkState.READY, FireworkState.WAITING, FireworkState.RESERVED,
                          FireworkState.RUNNING, FireworkState.PAUSED)
#: Fireworks waiting for a worker
QUEUED_FIREWORK_STATES = (FireworkState.READY, FireworkState.WAITING, FireworkState.RESERVED,
                          FireworkState.PAUSED)


class FwSpec:
    """The SLD part of a Firework spec: ``spec["sld"] = {trajectory, step, kind, seq}``.

    ``seq`` is the Firework's position in its trajectory's chain (0 for the first Firework of a
    workflow submission, +1 per successor); claims of successors are keyed by it.
    """

    KEY = "sld"
    PREFIX = "spec.sld"
    TRAJECTORY = "spec.sld.trajectory"

    @classmethod
    def make(cls, trajectory: str, step: int, kind: str, seq: int | None = None) -> dict[str, Any]:
        sld: dict[str, Any] = {"trajectory": trajectory, "step": int(step), "kind": str(kind)}
        if seq is not None:
            sld["seq"] = int(seq)
        return sld

    @classmethod
    def of(cls, fw_spec: dict[str, Any] | None) -> dict[str, Any]:
        """The SLD mapping of a Firework spec ({} for a Firework that is not ours)."""
        return ((fw_spec or {}).get(cls.KEY)) or {}

    @classmethod
    def trajectory_of(cls, fw_doc: dict[str, Any] | None) -> str | None:
        """Trajectory id of a stored Firework document (``{"spec": {...}}``), or None."""
        return cls.of((fw_doc or {}).get("spec")).get("trajectory")

    @classmethod
    def query(cls, trajectory: str | None = None, states: Any = None, **extra: Any) -> dict[str, Any]:
        """Query on the ``fireworks`` collection: SLD Fireworks (of ``trajectory``), in ``states``."""
        q: dict[str, Any] = {cls.TRAJECTORY: trajectory} if trajectory is not None else {cls.PREFIX: {"$exists": True}}
        if states is not None:
            q["state"] = str(states) if isinstance(states, str) else {"$in": [str(s) for s in states]}
        q.update(extra)
        return q

    @classmethod
    def projection(cls) -> dict[str, int]:
        return {cls.TRAJECTORY: 1, "state": 1}
