"""Validation helpers of the run spec's sections: each checks one value and raises
:class:`~sld_workflows.errors.SpecError` naming the dotted key (``dynamics.dt_fs``) with a one-line
reason, suggesting the closest allowed name for a misspelt key or value.

Bottom layer, so that both the run spec (:mod:`sld_workflows.run.spec`) and the engine sections of the
engine registry (:mod:`sld_workflows.engines.registry`) validate with the same words. Nested mappings
kept in a section are frozen (:func:`freeze`: read-only mappings, tuples) and thawed back to plain
JSON (:func:`thaw`) when the section is written out.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from sld_workflows.errors import SpecError
from sld_workflows.jsonable import jsonable


def spec_error(key: str, reason: Any) -> SpecError:
    """A SpecError whose message is a single line."""
    return SpecError(key, " ".join(str(reason).split()))


def join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"did you mean 'x'? "`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(name, tuple(choices), n=1)
    return f"did you mean '{close[0]}'? " if close else ""


def mapping(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise spec_error(key, f"must be a mapping, got {describe(value)}")
    for k in value:
        if not isinstance(k, str):
            raise spec_error(key, f"keys must be strings, got {describe(k)}")
    return dict(value)


def check_keys(d: Mapping[str, Any], prefix: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    for k in d:
        if k not in allowed:
            raise spec_error(join(prefix, k), f"unknown key ({did_you_mean(k, allowed)}allowed: {', '.join(allowed)})")
    for k in required:
        if k not in d or d[k] is None:
            raise spec_error(join(prefix, k), "missing (required)")


def number(value: Any, key: str, minimum: float | None = None, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise spec_error(key, f"must be a number, got {describe(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise spec_error(key, f"must be finite, got {value}")
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        raise spec_error(key, f"must be {'>' if strict else '>='} {minimum:g}, got {value:g}")
    return value


def integer(value: Any, key: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise spec_error(key, f"must be an integer, got {describe(value)}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise spec_error(key, f"must be >= {minimum}, got {value}")
    return value


def string(value: Any, key: str, choices: tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise spec_error(key, f"must be a non-empty string, got {describe(value)}")
    if choices is not None and value not in choices:
        raise spec_error(key, f"unknown value {value!r} ({did_you_mean(value, choices)}"
                              f"choose one of: {', '.join(choices)})")
    return value


def vector3(value: Any, key: str) -> tuple[float, float, float]:
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise spec_error(key, f"must be a list of 3 numbers, got {describe(value)}")
    return tuple(number(v, f"{key}[{i}]") for i, v in enumerate(value))  # type: ignore[return-value]


def supercell(value: Any, key: str) -> tuple[int, int, int]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = [value] * 3
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise spec_error(key, f"must be an integer or a list of 3 integers, got {describe(value)}")
    return tuple(integer(v, f"{key}[{i}]", minimum=1) for i, v in enumerate(value))  # type: ignore[return-value]


# ------------------------------------------------------------------------ frozen JSON values
def freeze(value: Any, key: str) -> Any:
    """``value`` as plain JSON (:func:`sld_workflows.jsonable.jsonable`: tuples -> lists, numpy ->
    Python numbers, enum members -> str; non-finite numbers refused), so that it survives FireWorks and
    MongoDB unchanged, then made read-only: mappings become ``MappingProxyType``, lists tuples.
    Raises SpecError(key) for what JSON cannot hold."""
    try:
        plain = jsonable(value, non_finite="error", objects="error")
    except (TypeError, ValueError) as exc:
        raise spec_error(key, f"contains a value that is not JSON-serialisable ({exc})") from exc
    return _frozen(plain)


def _frozen(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """The plain JSON form of a frozen value (mappings -> dict, tuples -> list)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value
