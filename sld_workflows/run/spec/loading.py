"""Reading a run spec file: YAML, one mapping of sections, errors with the line they are on."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sld_workflows.schema import spec_error


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping of the YAML spec file at ``path`` (SpecError with key "" if it cannot be one)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise spec_error("", f"spec file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise spec_error("", f"{path}: not valid YAML{where}: {problem}") from exc
    if raw is None:
        raise spec_error("", f"{path}: the spec file is empty")
    if not isinstance(raw, Mapping):
        raise spec_error("", f"{path}: the spec must be a mapping of sections, got {type(raw).__name__}")
    return dict(raw)
