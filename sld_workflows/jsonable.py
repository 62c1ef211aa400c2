"""Plain JSON types from engine infos, summaries and specs (the one sanitiser of the package).

Written here rather than taken from ``monty.json.jsanitize``: the package needs three policies for
non-finite numbers (keep for BSON, null for strict JSON files, refuse in a spec) and for unknown
objects (``as_dict``, ``as_dict`` or ``str``, refuse), and ``jsanitize`` has neither choice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np

NonFinite = Literal["keep", "null", "error"]
Objects = Literal["as_dict", "as_dict_or_str", "error"]


def _json_key(key: Any) -> str:
    """Dictionary keys as ``json.dumps`` writes them (str, int, float, bool, None; else TypeError)."""
    if isinstance(key, str):
        return str(key)
    if isinstance(key, bool) or key is None:
        return {True: "true", False: "false", None: "null"}[key]
    if isinstance(key, int | np.integer):
        return str(int(key))
    if isinstance(key, float | np.floating):
        return float.__repr__(float(key))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def jsonable(value: Any, *, non_finite: NonFinite = "keep", objects: Objects = "error") -> Any:
    """``value`` as dicts (str keys), lists, str, int, float, bool and None, recursively.

    numpy arrays → lists, numpy scalars → Python numbers, tuples → lists, str/int/float subclasses
    (e.g. ``StrEnum`` members) → the plain type. ``non_finite``: NaN/±inf are kept (JSON's common
    extension; BSON stores them), written as ``None`` ("null"), or refused with ``ValueError``
    ("error"). ``objects`` (anything else): its ``as_dict()`` ("as_dict", else TypeError), its
    ``as_dict()`` or ``str()`` ("as_dict_or_str"), or ``TypeError`` ("error").
    """
    convert: Callable[[Any], Any] = lambda v: jsonable(v, non_finite=non_finite, objects=objects)  # noqa: E731
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {_json_key(k): convert(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [convert(v) for v in value]
    if isinstance(value, np.ndarray):
        return convert(value.tolist())
    if isinstance(value, np.generic):
        return convert(value.item())
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value) or non_finite == "keep":
            return float(value)
        if non_finite == "null":
            return None
        raise ValueError("Out of range float values are not JSON compliant")
    if objects != "error" and hasattr(value, "as_dict"):
        return convert(value.as_dict())
    if objects == "as_dict_or_str":
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
