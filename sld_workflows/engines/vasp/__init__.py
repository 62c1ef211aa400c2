"""VASP engine with constrained local moments (I_CONSTRAINED_M): input set, parsers, Custodian job.

See ``docs/vasp_engine.md``. ``VaspEngine.from_spec(engine_section)`` builds it from a run spec.
Names are imported lazily so that ``sld-fake-vasp`` (which needs only the light ``conventions``) does not
pay for importing Custodian at every start.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ConstrainedStaticSet": "sld_workflows.engines.vasp.inputs",
    "CustodianSettings": "sld_workflows.engines.vasp.custodian_job",
    "VaspRunError": "sld_workflows.engines.vasp.custodian_job",
    "VaspEngine": "sld_workflows.engines.vasp.engine",
    "OszicarParseError": "sld_workflows.engines.vasp.oszicar",
    "parse_constrained_oszicar": "sld_workflows.engines.vasp.oszicar",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
