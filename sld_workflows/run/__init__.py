"""Run layer: the run specification (:mod:`.spec`), the in-process driver (:mod:`.local`) and the
outputs (:mod:`.output`: extxyz frames, JSON summary, overview plot)."""
