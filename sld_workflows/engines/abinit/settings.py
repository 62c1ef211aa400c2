"""``AbinitSettings``: the serialisable settings of the ABINIT engine (one dataclass, as atomate2's
makers), validated once, before anything runs; every problem is a one-line
:class:`~sld_workflows.errors.SpecError` naming its key.

Units are ABINIT's: Hartree for energies (``ecut_ha``, ``tsmear_ha``, ``toldfe_ha``), bohr for the
sphere radii (``ratsph_bohr``), Ha/μB² for ``magcon_lambda``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sld_workflows import schema
from sld_workflows.schema import spec_error

#: where Debian's ``abinit-data`` puts the PseudoDojo JTH PAW (PBE) datasets; ``$ABINIT_PP_DIRPATH``
#: or ``pp_dirpath`` override it
DEFAULT_PP_DIRS = ("/usr/share/abinit/psp/Pseudodojo_paw_pbe_standard",)

#: input variables the engine writes itself: an ``extra`` mapping may not set them
OWNED_VARIABLES = frozenset({
    "acell", "rprim", "natom", "ntypat", "typat", "znucl", "xred", "xcart", "spinat", "magconon", "magcon_lambda",
    "ratsph", "nspinor", "nspden", "nsppol", "pseudos", "pp_dirpath", "ngkpt", "kptopt", "irdwfk", "irdden",
    "indata_prefix", "getwfk_filepath", "getden_filepath", "ecut", "pawecutdg", "toldfe", "nstep", "optstress",
    "optforces", "chksymtnons", "prtwf", "prtden",
})

KEYS = ("kind", "pseudos", "pp_dirpath", "ratsph_bohr", "magcon_lambda", "ecut_ha", "pawecutdg_ha", "kpoints",
        "shiftk", "occopt", "tsmear_ha", "nband", "toldfe_ha", "nstep", "symmetry", "stress", "restart", "command",
        "mpi_procs", "run_dir", "extra", "min_moment_fraction")


def paw_radius_bohr(path: Path) -> float | None:
    """The PAW radius of a PAW XML dataset (``<paw_radius rc="..."/>``), or None for other formats."""
    if path.suffix.lower() != ".xml":
        return None
    import re

    with open(path, errors="replace") as f:
        m = re.search(r'<paw_radius\s+rc="\s*([0-9.]+)', f.read(200_000), re.I)
    return float(m.group(1)) if m else None


def default_pp_dirpath() -> str:
    env = os.environ.get("ABINIT_PP_DIRPATH")
    if env:
        return env
    for d in DEFAULT_PP_DIRS:
        if Path(d).is_dir():
            return d
    return DEFAULT_PP_DIRS[0]


@dataclasses.dataclass(frozen=True)
class AbinitSettings:
    """Everything the input file depends on, and how to run ABINIT.

    - ``ratsph_bohr``: sphere radius per magnetic species, in which moments are integrated and the
      penalty acts (required: the field depends on it);
    - ``magcon_lambda``: penalty strength λ (> 0); E_p = λ Σ_i |M_i⊥|²; 0.1–0.5 (larger oscillates);
    - ``pseudos``: {species: file in ``pp_dirpath``}, default ``<symbol>.xml`` (JTH PAW);
    - ``stress``: off by default — ABINIT 9.6.2's noncollinear PAW stress is wrong (a bcc Fe cell at
      equilibrium volume reports −395 GPa; see docs/abinit_engine.md), so it is not handed to a barostat;
    - ``command``: the ABINIT executable (list); ``mpi_procs`` > 1 prefixes ``mpirun -np N``;
    - ``min_moment_fraction``: a run whose sphere moment on a magnetic site ends below this fraction
      of the state's moment is an error (the SCF fell into another magnetic solution: measured on
      bcc Fe at 2×2×2 and 4×4×4 k, moments collapsing from 1.8 to 0.2 μB or 0).
    """

    ratsph_bohr: Mapping[str, float]
    magcon_lambda: float = 0.1
    pseudos: Mapping[str, str] = dataclasses.field(default_factory=dict)
    pp_dirpath: str = dataclasses.field(default_factory=default_pp_dirpath)
    ecut_ha: float = 18.0
    pawecutdg_ha: float | None = None
    kpoints: tuple[int, int, int] = (4, 4, 4)
    shiftk: tuple[float, float, float] = (0.0, 0.0, 0.0)
    occopt: int = 4
    tsmear_ha: float = 0.01
    nband: int | None = None
    toldfe_ha: float = 1e-7
    nstep: int = 80
    symmetry: bool = True
    stress: bool = False
    restart: bool = True
    command: tuple[str, ...] = ("abinit",)
    mpi_procs: int = 1
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    min_moment_fraction: float = 0.5

    @property
    def pawecutdg(self) -> float:
        return 2.0 * self.ecut_ha if self.pawecutdg_ha is None else self.pawecutdg_ha

    def pseudo_file(self, species: str) -> str:
        return self.pseudos.get(species, f"{species}.xml")

    def full_command(self) -> list[str]:
        prefix = ["mpirun", "-np", str(self.mpi_procs)] if self.mpi_procs > 1 else []
        return prefix + list(self.command)

    # ------------------------------------------------------------------ validation
    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], key: str = "engine") -> AbinitSettings:
        d = schema.mapping(raw, key)
        schema.check_keys(d, key, KEYS, required=("ratsph_bohr",))
        k = lambda name: schema.join(key, name)  # noqa: E731
        out: dict[str, Any] = {}
        ratsph = schema.mapping(d["ratsph_bohr"], k("ratsph_bohr"))
        out["ratsph_bohr"] = {s: schema.number(r, k(f"ratsph_bohr.{s}"), 0.0, True) for s, r in ratsph.items()}
        if "magcon_lambda" in d:
            out["magcon_lambda"] = schema.number(d["magcon_lambda"], k("magcon_lambda"), 0.0, True)
        if d.get("pseudos") is not None:
            pseudos = schema.mapping(d["pseudos"], k("pseudos"))
            out["pseudos"] = {s: schema.string(f, k(f"pseudos.{s}")) for s, f in pseudos.items()}
        if d.get("pp_dirpath") is not None:
            out["pp_dirpath"] = str(Path(schema.string(d["pp_dirpath"], k("pp_dirpath"))).expanduser().resolve())
        if d.get("min_moment_fraction") is not None:
            out["min_moment_fraction"] = schema.number(d["min_moment_fraction"], k("min_moment_fraction"), 0.0)
        for name in ("ecut_ha", "pawecutdg_ha", "tsmear_ha", "toldfe_ha"):
            if d.get(name) is not None:
                out[name] = schema.number(d[name], k(name), 0.0, True)
        for name, minimum in (("occopt", 0), ("nband", 1), ("nstep", 1), ("mpi_procs", 1)):
            if d.get(name) is not None:
                out[name] = schema.integer(d[name], k(name), minimum)
        if d.get("kpoints") is not None:
            kp = d["kpoints"]
            if not isinstance(kp, list | tuple) or len(kp) != 3:
                raise spec_error(k("kpoints"), f"must be 3 positive integers, got {kp!r}")
            out["kpoints"] = tuple(schema.integer(n, k(f"kpoints[{i}]"), 1) for i, n in enumerate(kp))
        if d.get("shiftk") is not None:
            out["shiftk"] = schema.vector3(d["shiftk"], k("shiftk"))
        for name in ("symmetry", "stress", "restart"):
            if d.get(name) is not None:
                if not isinstance(d[name], bool):
                    raise spec_error(k(name), f"must be true or false, got {d[name]!r}")
                out[name] = d[name]
        if d.get("command") is not None:
            cmd = d["command"]
            cmd = cmd.split() if isinstance(cmd, str) else list(cmd)
            if not cmd or not all(isinstance(c, str) and c for c in cmd):
                raise spec_error(k("command"), f"must be a command (string or list of strings), got {d['command']!r}")
            out["command"] = tuple(cmd)
        if d.get("extra") is not None:
            extra = schema.mapping(d["extra"], k("extra"))
            owned = sorted(set(map(str.lower, extra)) & OWNED_VARIABLES)
            if owned:
                raise spec_error(k("extra"), f"{', '.join(owned)} are set by the engine and cannot be overridden")
            out["extra"] = extra
        return cls(**out)

    def check_for(self, species: tuple[str, ...], magnetic_species: tuple[str, ...], key: str = "engine") -> None:
        """What can be known before anything runs: pseudopotentials present, a sphere for every
        magnetic species, the executable on PATH."""
        pp = Path(self.pp_dirpath)
        for s in sorted(set(species)):
            f = pp / self.pseudo_file(s)
            if not f.is_file():
                raise spec_error(schema.join(key, "pseudos"),
                                 f"no pseudopotential for {s}: {f} does not exist (set pseudos/pp_dirpath)")
            rpaw = paw_radius_bohr(f)
            if s in self.ratsph_bohr and rpaw is not None and self.ratsph_bohr[s] < rpaw:
                raise spec_error(schema.join(key, f"ratsph_bohr.{s}"), f"{self.ratsph_bohr[s]:g} bohr is smaller than "
                                 f"the PAW radius {rpaw:g} bohr of {f.name} (ABINIT refuses it)")
        missing = sorted(set(magnetic_species) - set(self.ratsph_bohr))
        if missing:
            raise spec_error(schema.join(key, "ratsph_bohr"),
                             f"no sphere radius for magnetic species {', '.join(missing)}")
        exe = self.command[0]
        if shutil.which(exe) is None:
            raise spec_error(schema.join(key, "command"), f"ABINIT executable {exe!r} not found on PATH")
        if self.mpi_procs > 1 and shutil.which("mpirun") is None:
            raise spec_error(schema.join(key, "mpi_procs"), "mpirun not found on PATH")

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for name in ("kpoints", "shiftk", "command"):
            d[name] = list(d[name])
        d["ratsph_bohr"], d["pseudos"], d["extra"] = dict(self.ratsph_bohr), dict(self.pseudos), dict(self.extra)
        return d

    @classmethod
    def from_stored(cls, d: Mapping[str, Any]) -> AbinitSettings:
        """From :meth:`as_dict` (no validation of the environment)."""
        d = dict(d)
        for name in ("kpoints", "shiftk", "command"):
            if name in d:
                d[name] = tuple(d[name])
        return cls(**d)
