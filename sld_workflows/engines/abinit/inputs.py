"""The ABINIT input file (``run.abi``) of one constrained noncollinear SCF.

Written by hand rather than with ASE's ``write_abinit_in``: ASE's writer knows neither the
``magconon``/``magcon_lambda``/``ratsph`` constraint variables nor the restart variables, and would
need most of its output overridden. The engine owns the variables in
:data:`~sld_workflows.engines.abinit.settings.OWNED_VARIABLES`; ``extra`` adds others verbatim.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
from ase.data import atomic_numbers

from sld_workflows.engines.abinit.settings import AbinitSettings
from sld_workflows.state import SLDState
from sld_workflows.vectors import unit_rows

INPUT_NAME = "run.abi"
OUTPUT_NAME = "run.abo"
LOG_NAME = "run.log"
OUT_PREFIX = "runo"       # ABINIT 9 names its outputs <input stem>o_WFK, ..._DEN
SEED_PREFIX = "prevo"     # the previous run's WFK/DEN are copied in under this prefix
RESTART_FILES = ("WFK", "DEN")
#: sphere radius written for a non-magnetic species without ``ratsph_bohr`` (it carries no penalty;
#: only its printed moment depends on it)
NONMAGNETIC_RATSPH_BOHR = 1.0


def spinat(state: SLDState) -> np.ndarray:
    """(N, 3) μB: moment size × spin direction (the SIB midpoint's s̄ normalised: ABINIT constrains
    directions only), zero on non-magnetic sites."""
    out = np.zeros((state.n_sites, 3))
    mag = state.magnetic
    out[mag] = state.moments[mag, None] * unit_rows(state.spins[mag])
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, list | tuple):
        return " ".join(_fmt(v) for v in value)
    if isinstance(value, str):
        return value if value.replace(".", "").replace("*", "").replace(" ", "").isalnum() else f'"{value}"'
    return repr(value)


def abinit_input(state: SLDState, settings: AbinitSettings, restart: bool = False) -> str:
    """The text of ``run.abi`` for ``state`` (restart: read ``prevo_WFK``/``prevo_DEN``)."""
    types = list(dict.fromkeys(state.species))
    typat = [types.index(s) + 1 for s in state.species]
    xred = np.linalg.solve(np.asarray(state.cell).T, np.asarray(state.positions).T).T
    ratsph = [settings.ratsph_bohr.get(s, NONMAGNETIC_RATSPH_BOHR) for s in types]
    lines = [
        "# written by sld_workflows (AbinitEngine): Ma-Dudarev direction constraint, magconon 1",
        f'pp_dirpath "{settings.pp_dirpath}"',
        f'pseudos "{", ".join(settings.pseudo_file(s) for s in types)}"',
        "acell 3*1.0 Angstrom",
        "rprim " + "\n      ".join(" ".join(f"{x:.12f}" for x in row) for row in np.asarray(state.cell)),
        f"natom {state.n_sites}",
        f"ntypat {len(types)}",
        "znucl " + " ".join(str(atomic_numbers[s]) for s in types),
        "typat " + " ".join(map(str, typat)),
        "xred " + "\n     ".join(" ".join(f"{x:.12f}" for x in row) for row in xred),
        "nspinor 2", "nspden 4", "nsppol 1", "pawspnorb 0",
        "spinat " + "\n       ".join(" ".join(f"{x:.10f}" for x in row) for row in spinat(state)),
        "magconon 1",
        f"magcon_lambda {settings.magcon_lambda!r}",
        "ratsph " + " ".join(f"{r!r}" for r in ratsph),
        f"ecut {settings.ecut_ha!r}",
        f"pawecutdg {settings.pawecutdg!r}",
        f"occopt {settings.occopt}",
        f"tsmear {settings.tsmear_ha!r}",
        *([f"nband {settings.nband}"] if settings.nband else []),
        f"kptopt {4 if settings.symmetry else 3}",
        *([] if settings.symmetry else ["nsym 1"]),
        "ngkpt " + " ".join(map(str, settings.kpoints)),
        "nshiftk 1",
        "shiftk " + " ".join(f"{x!r}" for x in settings.shiftk),
        f"toldfe {settings.toldfe_ha!r}",
        f"nstep {settings.nstep}",
        "diemac 1.0d6",
        "optforces 1",
        f"optstress {int(settings.stress)}",
        "prtdensph 1",
        f"prtwf {int(settings.restart)}",
        f"prtden {int(settings.restart)}",
        "prteig 0",
        "prtgsr 0",
        "chksymtnons 0   # displaced atoms: non-symmorphic translations must not abort the run",
    ]
    lines += [f"{name} {_fmt(value)}" for name, value in settings.extra.items()]
    if restart:
        lines += [f'indata_prefix "{SEED_PREFIX}"', "irdwfk 1", "irdden 1"]
    return "\n".join(lines) + "\n"


def write_inputs(state: SLDState, settings: AbinitSettings, run_dir: Path,
                 previous_dir: Path | None = None) -> dict[str, Any]:
    """``run.abi`` in ``run_dir``, with the previous run's WFK/DEN copied in as ``prevo_*`` when
    ``previous_dir`` has them (and ``restart`` is on). Returns the restart-chain record."""
    copied = []
    if previous_dir is not None and settings.restart:
        for ext in RESTART_FILES:
            src = previous_dir / f"{OUT_PREFIX}_{ext}"
            if src.is_file():
                shutil.copy2(src, run_dir / f"{SEED_PREFIX}_{ext}")
                copied.append(ext)
    restart = copied == list(RESTART_FILES)
    (run_dir / INPUT_NAME).write_text(abinit_input(state, settings, restart=restart))
    return {"seeded_from": str(previous_dir) if restart else None, "copied": copied, "spinat": spinat(state)}


def has_restart_files(run_dir: Path) -> bool:
    return all((run_dir / f"{OUT_PREFIX}_{ext}").is_file() for ext in RESTART_FILES)
