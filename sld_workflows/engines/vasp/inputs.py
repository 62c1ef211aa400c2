"""Input set for one static noncollinear constrained-moment SCF (``I_CONSTRAINED_M``), atomate2-style:
explicit, serialisable settings, one ``write(state, directory)`` call per SLD engine evaluation.

The spin directions are imposed through ``M_CONSTR`` (unit spin × ``constraint_size``; 0 0 0 for
non-magnetic ions, which VASP then leaves unconstrained). ``MAGMOM`` (μ·s, 3 per ion) is written too
but VASP ignores it when it restarts from a WAVECAR/CHGCAR (DESIGN.md §3). Restart tags:

- WAVECAR carried over: ``ISTART = 1``, ``ICHARG = 0`` (density from the wavefunctions);
- only CHGCAR: ``ISTART = 0``, ``ICHARG = 1``;
- nothing: ``ISTART = 0``, ``ICHARG = 2``.

Per-species tags (``RWIGS``, ``LDAUU``/``LDAUJ``/``LDAUL``, ...) may be given as ``{species: value}``
dicts and are expanded in POSCAR species order (pymatgen ``Poscar.site_symbols``), which is also
the POTCAR order. POTCAR: pymatgen ``Potcar`` when ``potcar="pymatgen"`` (or ``"auto"`` with
``PMG_VASP_PSP_DIR`` set), else ``POTCAR.spec`` (one symbol per line, ``potcar="spec"``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
from monty.json import MSONable
from pymatgen.io.vasp.inputs import Incar, Kpoints, Poscar

from sld_workflows.errors import SLDError, SpecError
from sld_workflows.state import SLDState
from sld_workflows.vectors import unit_rows

#: Tags that are one value per POSCAR species; dict values {species: value} are expanded.
PER_SPECIES_TAGS = ("RWIGS", "LDAUU", "LDAUJ", "LDAUL")
#: Tags the input set owns; overriding them would break the constrained run or the restart chain.
PROTECTED_TAGS = ("M_CONSTR", "MAGMOM", "LNONCOLLINEAR", "NSW", "IBRION", "ISTART", "ICHARG", "LWAVE", "LCHARG")
#: Tags refused in ``incar`` with the option that sets them instead (or why they make no sense).
REFUSED_TAGS = {
    "ISPIN": "has no meaning in a noncollinear (LNONCOLLINEAR) run; leave it out",
    "LSORBIT": "set spin_orbit: true instead (it also sets GGA_COMPAT = .FALSE.)",
}
POTCAR_MODES = ("auto", "pymatgen", "spec")
SMEARING_MODES = ("auto", "metal", "insulator")
#: ISYM values that keep the spins free: -1 (no symmetry at all) or 0 (no symmetry, but k and -k
#: taken as equivalent, ψ_k = ψ*_-k). Time reversal maps every moment m -> -m, so the k/-k
#: equivalence of ISYM = 0 is exact only for collinear spins; generic SLD spins are non-coplanar.
ALLOWED_ISYM = (-1, 0)

DEFAULT_INCAR: dict[str, Any] = {
    "SYSTEM": "sld constrained static",
    "PREC": "Accurate",
    "ENCUT": 400.0,
    "EDIFF": 1e-6,
    "ALGO": "Normal",
    "NELM": 100,
    "LASPH": True,
}
#: Smearing per electronic character: Methfessel-Paxton (order 1) for metals (VASP's advice for
#: forces in metals), Gaussian with a small width for insulators and semiconductors, where MP gives
#: unphysical negative occupancies (VASP wiki, ISMEAR).
SMEARING_TAGS = {"metal": {"ISMEAR": 1, "SIGMA": 0.1}, "insulator": {"ISMEAR": 0, "SIGMA": 0.05}}


def electronic_character(species: list[str]) -> str:
    """"metal" when every species is a metal (pymatgen ``Element.is_metal``: Fe, FeRh, IrMn3), else
    "insulator" (oxides, halides: BiFeO3, CrI3, MgCr2O4, Cd2Os2O7). A heuristic for the default
    smearing only; ``smearing`` or ``incar`` overrides it."""
    from pymatgen.core import Element

    return "metal" if all(Element(s).is_metal for s in set(species)) else "insulator"


def lmaxmix_for_u(ldaul: dict[str, int] | list[int] | None) -> int | None:
    """LMAXMIX for a +U run: 4 when U acts on d electrons (L = 2), 6 on f (L = 3), None without +U.

    VASP mixes the on-site occupancies only up to LMAXMIX; the default (2) drops the d/f channels
    that +U acts on, so restarts from CHGCAR/WAVECAR lose them (VASP wiki, LMAXMIX)."""
    if ldaul is None:
        return None
    values = list(ldaul.values()) if isinstance(ldaul, dict) else list(ldaul)
    top = max((int(v) for v in values), default=-1)
    return {2: 4, 3: 6}.get(top)


@dataclasses.dataclass(frozen=True)
class ConstrainedStaticSet(MSONable):
    """Settings of the constrained static SCF.

    - ``rwigs``: {species: Å}; required for every magnetic species (the constraint integrates over
      the sphere), optional for non-magnetic ones (a default of 1.0 Å is not invented: missing
      non-magnetic species are written with the smallest given radius and recorded).
    - ``lambda_``: LAMBDA (eV/μB² for modes 1, 2).
    - ``i_constrained_m``: 1 (direction; default), 2 or 4.
    - ``constraint_size``: length of each M_CONSTR vector (irrelevant for mode 1, which normalises;
      for mode 2 it is the target smoothed moment |MW| in μB).
    - ``incar``: overrides, e.g. {"ENCUT": 520, "LDAU": True, "LDAUU": {"Fe": 4.0, "Bi": 0, "O": 0}}.
    - ``kpoints``: mesh (3 ints); ``kpoints_style``: "Gamma" or "Monkhorst".
    - ``potcar``: "auto" | "pymatgen" | "spec"; ``potcar_symbols``: {species: POTCAR symbol}
      (default: the element); ``potcar_functional``: pymatgen functional name.
    - ``smearing``: "auto" (from :func:`electronic_character`), "metal" or "insulator"
      (:data:`SMEARING_TAGS`); ISMEAR/SIGMA in ``incar`` win.
    - ``spin_orbit``: LSORBIT = .TRUE. with GGA_COMPAT = .FALSE. (needed for DMI and single-ion
      anisotropy: BiFeO3 canting, the CrI3 easy axis).
    - ``isym``: -1 (default; exact for non-coplanar spins) or 0 (k/-k equivalence, collinear only).
    LMAXMIX is set to 4 (d) or 6 (f) whenever ``incar`` switches on +U (LDAU) and does not set it.
    LORBIT is not written: the moments come from the constraint spheres in OSZICAR.
    """

    rwigs: dict[str, float]
    lambda_: float = 10.0
    i_constrained_m: int = 1
    constraint_size: float = 1.0
    incar: dict[str, Any] = dataclasses.field(default_factory=dict)
    kpoints: tuple[int, int, int] = (1, 1, 1)
    kpoints_style: str = "Gamma"
    potcar: str = "auto"
    potcar_symbols: dict[str, str] = dataclasses.field(default_factory=dict)
    potcar_functional: str = "PBE_54"
    smearing: str = "auto"
    spin_orbit: bool = False
    isym: int = -1

    def __post_init__(self) -> None:
        if self.i_constrained_m not in (1, 2, 4):
            raise SpecError("i_constrained_m", f"must be 1, 2 or 4, got {self.i_constrained_m!r}")
        if not (isinstance(self.lambda_, int | float) and self.lambda_ > 0):
            raise SpecError("lambda", f"must be a positive number, got {self.lambda_!r}")
        if not self.constraint_size > 0:
            raise SpecError("constraint_size", f"must be > 0, got {self.constraint_size!r}")
        if self.potcar not in POTCAR_MODES:
            raise SpecError("potcar", f"must be one of {POTCAR_MODES}, got {self.potcar!r}")
        if self.kpoints_style not in ("Gamma", "Monkhorst"):
            raise SpecError("kpoints_style", f"must be 'Gamma' or 'Monkhorst', got {self.kpoints_style!r}")
        kp = tuple(int(k) for k in self.kpoints)
        if len(kp) != 3 or min(kp) < 1:
            raise SpecError("kpoints", f"must be 3 positive integers, got {self.kpoints!r}")
        object.__setattr__(self, "kpoints", kp)
        bad = sorted(set(k.upper() for k in self.incar) & set(PROTECTED_TAGS))
        if bad:
            raise SpecError("incar", f"tags {bad} are set by the engine (constraints, restart chain) "
                                     "and cannot be overridden")
        for key in self.incar:
            if key.upper() in REFUSED_TAGS:
                raise SpecError(f"incar.{key.upper()}", REFUSED_TAGS[key.upper()])
            if key.upper() == "ISYM":
                raise SpecError("incar.ISYM", "set isym: -1 or 0 instead (the engine owns symmetry)")
        if self.smearing not in SMEARING_MODES:
            raise SpecError("smearing", f"must be one of {SMEARING_MODES}, got {self.smearing!r}")
        if not isinstance(self.spin_orbit, bool):
            raise SpecError("spin_orbit", f"must be true or false, got {self.spin_orbit!r}")
        if self.isym not in ALLOWED_ISYM:
            raise SpecError("isym", f"must be -1 or 0 (symmetry would tie spins together), got {self.isym!r}")
        saxis = {k.upper(): v for k, v in self.incar.items()}.get("SAXIS")
        if saxis is not None and list(map(float, saxis)) != [0.0, 0.0, 1.0]:
            raise SpecError("incar.SAXIS", "must stay 0 0 1: M_CONSTR, MW and the printed fields are in the SAXIS "
                                           "frame, and the engine writes/reads them as Cartesian")
        for sp, r in self.rwigs.items():
            if not (isinstance(r, int | float) and r > 0):
                raise SpecError("rwigs", f"radius for {sp} must be a positive number (Å), got {r!r}")

    @classmethod
    def from_spec(cls, section: dict[str, Any]) -> ConstrainedStaticSet:
        """From the ``engine`` section of a run spec: keys named as the fields (``lambda`` for
        ``lambda_``), each optional but ``rwigs``; absent keys keep the field defaults above (the one
        place they are written). Other keys are ignored (the engine checks for unknown ones)."""
        as_dict = lambda v: dict(v or {})  # noqa: E731
        conversions = {
            "rwigs": lambda v: {str(k): float(r) for k, r in dict(v).items()}, "lambda": float,
            "i_constrained_m": int, "constraint_size": float, "incar": as_dict, "kpoints": tuple,
            "kpoints_style": str, "potcar": str, "potcar_symbols": as_dict, "potcar_functional": str,
            "smearing": str, "spin_orbit": lambda v: v, "isym": int,
        }
        return cls(**{("lambda_" if key == "lambda" else key): convert(section[key])
                      for key, convert in conversions.items() if key in section})

    # ------------------------------------------------------------------ helpers
    def m_constr(self, state: SLDState) -> np.ndarray:
        """(N, 3) M_CONSTR: unit spin direction × constraint_size; zero on non-magnetic sites."""
        return np.where(state.magnetic[:, None], unit_rows(state.spins) * self.constraint_size, 0.0)

    def incar_for(self, state: SLDState, site_symbols: list[str], wavecar: bool, chgcar: bool) -> Incar:
        if not np.any(state.magnetic):
            raise SLDError("the structure has no magnetic site (all moments 0): a constrained-moment "
                           "VASP run needs at least one magnetic site")
        magnetic_species = {s for s, m in zip(state.species, state.magnetic, strict=True) if m}
        missing = sorted(magnetic_species - set(self.rwigs))
        if missing:
            raise SpecError("rwigs", f"no RWIGS radius for magnetic species {missing} (needed by the constraint)")
        incar: dict[str, Any] = dict(DEFAULT_INCAR)
        character = electronic_character(list(site_symbols)) if self.smearing == "auto" else self.smearing
        incar.update(SMEARING_TAGS[character])
        if self.spin_orbit:
            incar.update({"LSORBIT": True, "GGA_COMPAT": False})
        for k, v in self.incar.items():
            incar[k.upper()] = v
        if incar.get("LDAU") and "LMAXMIX" not in incar:
            lmaxmix = lmaxmix_for_u(incar.get("LDAUL"))
            if lmaxmix is not None:
                incar["LMAXMIX"] = lmaxmix
        rwigs = dict(self.rwigs)
        smallest = min(rwigs.values())
        for sp in site_symbols:
            rwigs.setdefault(sp, smallest)
        incar["RWIGS"] = rwigs
        for tag in PER_SPECIES_TAGS:
            value = incar.get(tag)
            if isinstance(value, dict):
                absent = [sp for sp in site_symbols if sp not in value]
                if absent:
                    raise SpecError(f"incar.{tag}", f"no value for species {absent}")
                incar[tag] = [value[sp] for sp in site_symbols]
        m_constr = self.m_constr(state)
        incar.update({
            "LNONCOLLINEAR": True,
            "I_CONSTRAINED_M": self.i_constrained_m,
            "LAMBDA": float(self.lambda_),
            "M_CONSTR": [float(x) for x in m_constr.ravel()],
            "MAGMOM": (m_constr / self.constraint_size * state.moments[:, None]).tolist(),
            "ISYM": int(self.isym),
            "NSW": 0,
            "IBRION": -1,
            "ISTART": 1 if wavecar else 0,
            "ICHARG": 0 if wavecar else (1 if chgcar else 2),
            "LWAVE": True,
            "LCHARG": True,
        })
        return Incar(incar)

    # ------------------------------------------------------------------ writing
    def write(
        self, state: SLDState, directory: str | Path, wavecar: bool = False, chgcar: bool = False
    ) -> dict[str, Any]:
        """Write INCAR, POSCAR, KPOINTS and POTCAR (or POTCAR.spec) into ``directory``.

        Returns a small record: M_CONSTR (N, 3), site symbols, which POTCAR file was written.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        poscar = Poscar(state.structure, comment=f"sld step {state.step}")
        symbols = list(poscar.site_symbols)
        incar = self.incar_for(state, symbols, wavecar, chgcar)
        potcar_file = self._write_potcar(symbols, directory)
        incar.write_file(directory / "INCAR")
        poscar.write_file(directory / "POSCAR", significant_figures=16)
        kp = (Kpoints.gamma_automatic if self.kpoints_style == "Gamma" else Kpoints.monkhorst_automatic)(self.kpoints)
        kp.write_file(directory / "KPOINTS")
        return {"m_constr": self.m_constr(state), "site_symbols": symbols, "potcar_file": potcar_file}

    def _write_potcar(self, symbols: list[str], directory: Path) -> str:
        psp_dir = os.environ.get("PMG_VASP_PSP_DIR")
        from pymatgen.core import SETTINGS

        psp_dir = psp_dir or SETTINGS.get("PMG_VASP_PSP_DIR")
        mode = self.potcar
        if mode == "auto":
            mode = "pymatgen" if psp_dir else "spec"
        names = [self.potcar_symbols.get(s, s) for s in symbols]
        if mode == "spec":
            (directory / "POTCAR.spec").write_text("".join(f"{n}\n" for n in names))
            return "POTCAR.spec"
        if not psp_dir or not Path(psp_dir).is_dir():
            raise SLDError(f"potcar: POTCARs requested but the POTCAR directory PMG_VASP_PSP_DIR={psp_dir!r} "
                           "is not set or does not exist (set it, or use potcar: spec)")
        from pymatgen.io.vasp.inputs import Potcar

        # pymatgen reads PMG_VASP_PSP_DIR from SETTINGS (loaded at import); use the directory found here
        saved = SETTINGS.get("PMG_VASP_PSP_DIR")
        SETTINGS["PMG_VASP_PSP_DIR"] = psp_dir
        try:
            Potcar(names, functional=self.potcar_functional).write_file(directory / "POTCAR")
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise SLDError(
                f"potcar: cannot build POTCAR {names} ({self.potcar_functional}) from {psp_dir}: {exc}"
            ) from exc
        finally:
            if saved is None:
                SETTINGS.pop("PMG_VASP_PSP_DIR", None)
            else:
                SETTINGS["PMG_VASP_PSP_DIR"] = saved
        return "POTCAR"

    # ------------------------------------------------------------------ serialisation
    def as_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["kpoints"] = list(self.kpoints)
        return {"@module": type(self).__module__, "@class": type(self).__name__, **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConstrainedStaticSet:
        return cls(**{k: v for k, v in d.items() if not k.startswith("@")})
