"""Material presets of the model engine (parameters and sources: docs/model_engine.md).

``make_preset(name, supercell, overrides, external_field_ev_per_mub) -> (SLDState, ModelEngine)``.
The state is the preset structure (× supercell) with the preset moments (μB), zero velocities and
all spins +z; callers re-initialise the spins.

Overrides switch off or rescale terms: a mapping from a term group to a mapping of keys:

- groups: ``pair`` (Morse / Morse network), ``exchange`` (Heisenberg J(r)), ``xxz`` (anisotropic
  exchange λJ), ``dmi``, ``anisotropy`` (single-ion), ``zeeman``;
- keys for every group: ``enabled`` (bool), ``scale`` (number multiplying the term's energy);
  ``exchange`` also takes ``slope_scale`` (multiplies dJ/dr of the ``linear`` form and β of the
  ``exponential`` form, nothing for ``constant``: 0 removes the spin-lattice coupling while keeping
  J at r₀; the Ma–Dudarev and Bethe–Slater forms reject it).

Unknown groups or keys, or bad values, raise ``SpecError(key, reason)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pymatgen.core import Lattice, Structure

from sld_workflows.engines.model.engine import ModelEngine
from sld_workflows.engines.model.geometry import fixed_bonds, nn_graph, pyrochlore_local_axes, two_colouring
from sld_workflows.engines.model.terms import (
    DMI,
    Exchange,
    MorseNetwork,
    MorsePair,
    SingleIon,
    Term,
    Zeeman,
)
from sld_workflows.errors import SpecError
from sld_workflows.state import SLDState

PRESET_NAMES: tuple[str, ...] = ("bcc_fe", "cri3_monolayer", "cd2os2o7", "mgcr2o4", "bifeo3", "bifeo3_2x2x2")

#: term groups and the override keys each accepts
OVERRIDE_KEYS: dict[str, tuple[str, ...]] = {
    "pair": ("enabled", "scale"),
    "exchange": ("enabled", "scale", "slope_scale"),
    "xxz": ("enabled", "scale"),
    "dmi": ("enabled", "scale"),
    "anisotropy": ("enabled", "scale"),
    "zeeman": ("enabled", "scale"),
}

#: Morse width used for every bond of the oxide/halide networks (Å⁻¹); D₀ = k/(2α²).
NETWORK_ALPHA_PER_A = 2.0

#: Moments (μB) of the magnetic species per preset.
MOMENTS_MUB = {
    "bcc_fe": {"Fe": 2.2},
    "cri3_monolayer": {"Cr": 3.0},
    "cd2os2o7": {"Os": 0.6},
    "mgcr2o4": {"Cr": 3.0},
    "bifeo3": {"Fe": 4.1},
    "bifeo3_2x2x2": {"Fe": 4.1},
}

#: Bond networks: (species a, species b) -> (bond cutoff Å in the reference, stiffness k = 2D₀α² eV/Å²)
NETWORKS: dict[str, dict[tuple[str, str], tuple[float, float]]] = {
    "cri3_monolayer": {("Cr", "I"): (3.2, 8.0), ("I", "I"): (4.1, 2.0), ("Cr", "Cr"): (4.2, 2.0)},
    "cd2os2o7": {
        ("Os", "O"): (2.3, 12.0), ("Cd", "O"): (2.8, 6.0), ("O", "O"): (3.0, 3.0),
        ("Os", "Os"): (4.0, 3.0), ("Cd", "Cd"): (4.0, 2.0), ("Cd", "Os"): (4.0, 2.0),
    },
    "mgcr2o4": {
        ("Cr", "O"): (2.5, 10.0), ("Mg", "O"): (2.5, 10.0), ("O", "O"): (3.3, 1.0),
        ("Cr", "Cr"): (3.2, 1.0), ("Cr", "Mg"): (4.0, 1.0), ("Mg", "Mg"): (4.0, 1.0),
    },
    "bifeo3": {
        ("Fe", "O"): (2.5, 10.0), ("Bi", "O"): (2.7, 6.0), ("O", "O"): (3.0, 3.0),
        ("Fe", "Fe"): (4.3, 2.0), ("Bi", "Bi"): (4.3, 2.0), ("Bi", "Fe"): (3.7, 2.0),
    },
}

# ------------------------------------------------------------------------ physical parameters (eV, Å)
FE_MORSE = {"d0_ev": 0.4174, "alpha_per_a": 1.3885, "r0_a": 2.845, "rcut_a": 8.0}  # Girifalco-Weizer 1959
FE_J0_EV, FE_RC_A = 0.93, 3.75  # Ma-Dudarev shape, SPILADY 0.870 eV x S^2 = 1.21, x 0.88 (sld_numerics §3.4)
CRI3_J1_EV, CRI3_LAMBDA_EV = 4.95e-3, 0.2025e-3  # Lado & Fernandez-Rossier 2017, x S^2 (S = 3/2)
CDOS_J1_EV, CDOS_SLOPE, CDOS_K_EV, CDOS_D_OVER_J = -14.4e-3, 0.030, 15.3e-3, 0.2  # Bogdanov et al. 2013
MGCR_J1_EV, MGCR_SLOPE = -15.9e-3, 0.140  # theta_CW = -370 K; J' from ZnCr2O4 -> CdCr2O4 (sld_numerics §3.4)
MGCR_J3_EV = 0.5e-3  # calibrated (FM, 3 % of |J1|) so that q = 0 is the collinear ground state (docs/model_engine.md)
BFO_J1_EV, BFO_J2_EV, BFO_D0_EV, BFO_K_EV = -27.4e-3, -0.94e-3, 0.75e-3, -0.05e-3  # Jeong et al. 2012 x S^2


def _structure(name: str) -> Structure:
    if name == "bcc_fe":
        return Structure.from_spacegroup("Im-3m", Lattice.cubic(2.8665), ["Fe"], [[0, 0, 0]])
    if name == "cri3_monolayer":
        return Structure.from_spacegroup(
            162, Lattice.hexagonal(6.867, 20.0), ["Cr", "I"], [[1 / 3, 2 / 3, 0.0], [0.6416, 0.0, 1.56 / 20.0]]
        )
    if name == "cd2os2o7":
        return Structure.from_spacegroup(
            "Fd-3m:2", Lattice.cubic(10.17), ["Os", "Cd", "O", "O"],
            [[0, 0, 0], [0.5, 0.5, 0.5], [0.319, 0.125, 0.125], [0.375, 0.375, 0.375]],
        )
    if name == "mgcr2o4":
        return Structure.from_spacegroup(
            "Fd-3m:2", Lattice.cubic(8.333), ["Mg", "Cr", "O"],
            [[0.125, 0.125, 0.125], [0.5, 0.5, 0.5], [0.2612, 0.2612, 0.2612]],
        )
    if name in ("bifeo3", "bifeo3_2x2x2"):
        hexa = Structure.from_spacegroup(
            "R3c", Lattice.hexagonal(5.5876, 13.867), ["Bi", "Fe", "O"],
            [[0, 0, 0], [0, 0, 0.2212], [0.443, 0.012, 0.9543]],
        )
        return hexa.get_primitive_structure()
    raise SpecError("preset", f"unknown preset {name!r}; known: {', '.join(PRESET_NAMES)}")


def _check_supercell(supercell: Any) -> tuple[int, int, int]:
    try:
        sc = tuple(int(x) for x in supercell)
    except (TypeError, ValueError) as exc:
        raise SpecError("supercell", f"must be three positive integers, got {supercell!r}") from exc
    if len(sc) != 3 or any(x < 1 for x in sc) or any(float(x) != float(y) for x, y in zip(sc, supercell, strict=False)):
        raise SpecError("supercell", f"must be three positive integers, got {supercell!r}")
    return sc


def _check_overrides(overrides: dict | None) -> dict[str, dict[str, Any]]:
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise SpecError("overrides", f"must be a mapping of term groups, got {type(overrides).__name__}")
    out: dict[str, dict[str, Any]] = {}
    for group, keys in overrides.items():
        if group not in OVERRIDE_KEYS:
            raise SpecError(f"overrides.{group}", f"unknown term group; known: {', '.join(OVERRIDE_KEYS)}")
        if not isinstance(keys, dict):
            raise SpecError(f"overrides.{group}", "must be a mapping such as {enabled: false} or {scale: 0.5}")
        for key, value in keys.items():
            where = f"overrides.{group}.{key}"
            if key not in OVERRIDE_KEYS[group]:
                raise SpecError(where, f"unknown key; known: {', '.join(OVERRIDE_KEYS[group])}")
            if key == "enabled":
                if not isinstance(value, bool):
                    raise SpecError(where, f"must be true or false, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
                raise SpecError(where, f"must be a finite number, got {value!r}")
        out[group] = dict(keys)
    return out


def _network(state: SLDState, spec: dict[tuple[str, str], tuple[float, float]]) -> MorseNetwork:
    ii, jj, ff, rr, dd, aa = [], [], [], [], [], []
    for (a, b), (rmax, k) in spec.items():
        i, j, f, r0 = fixed_bonds(state.positions, state.cell, state.species, a, b, rmax)
        ii.append(i)
        jj.append(j)
        ff.append(f)
        rr.append(r0)
        dd.append(np.full(len(i), k / (2.0 * NETWORK_ALPHA_PER_A**2)))
        aa.append(np.full(len(i), NETWORK_ALPHA_PER_A))
    return MorseNetwork(
        i=np.concatenate(ii), j=np.concatenate(jj), frac_ref=np.concatenate(ff),
        d0_ev=np.concatenate(dd), alpha_per_a=np.concatenate(aa), r0_a=np.concatenate(rr),
    )


def _magnetic_sites(state: SLDState) -> np.ndarray:
    return np.flatnonzero(state.magnetic)


def _pyrochlore_dmi(state: SLDState, d_ev: float) -> DMI:
    """Moriya-rule DMI on pyrochlore bonds: D_ij ∥ (r_j − r_i) × (c − m) ∥ opposite edge, with
    c the tetrahedron centre and m the bond midpoint; the overall sign is chosen so that the DMI
    energy of the all-in-all-out state is negative ("direct" DMI, Elhajal et al. 2005)."""
    sites = _magnetic_sites(state)
    i, j, d = nn_graph(state.positions, state.cell, sites)
    # neighbour vectors per site, to find the two common neighbours (the rest of the tetrahedron)
    nb: dict[int, list[tuple[int, np.ndarray]]] = {int(s): [] for s in sites}
    for a, b, v in zip(i, j, d, strict=True):
        nb[int(a)].append((int(b), v))
        nb[int(b)].append((int(a), -v))
    vecs = np.zeros((len(i), 3))
    for k, (a, v) in enumerate(zip(i, d, strict=True)):
        bond = np.linalg.norm(v)
        # tetrahedron mates of the bond a->b: neighbours of a at one bond length from b
        mates = [w for _, w in nb[int(a)] if abs(np.linalg.norm(w - v) - bond) < 0.2 * bond and np.linalg.norm(w) > 0]
        if len(mates) != 2:
            raise ValueError("pyrochlore DMI: could not identify the tetrahedron of a bond")
        centre = 0.25 * (v + mates[0] + mates[1])  # relative to a
        dvec = np.cross(v, centre - 0.5 * v)
        vecs[k] = dvec / np.linalg.norm(dvec)
    frac_ref = d @ np.linalg.inv(state.cell)
    r0 = np.linalg.norm(d, axis=1)
    term = DMI(i=i, j=j, frac_ref=frac_ref, d_ev=d_ev * vecs, r0_a=r0)
    axes = pyrochlore_local_axes(state.positions, state.cell, sites)
    s = np.zeros((state.n_sites, 3))
    s[sites] = axes
    e_aiao = float(np.sum(np.einsum("ij,ij->i", term.d_ev, np.cross(s[i], s[j]))))
    if e_aiao > 0:
        term.d_ev = -term.d_ev
    return term


def build_preset_terms(name: str, state: SLDState) -> list[Term]:
    """The terms of preset ``name`` for ``state`` (its structure × supercell)."""
    n = state.n_sites
    sp = np.asarray(state.species)
    if name == "bcc_fe":
        return [
            MorsePair("Fe", "Fe", **FE_MORSE),
            Exchange("Fe", "Fe", "ma_dudarev", {"j0_ev": FE_J0_EV}, rcut_a=FE_RC_A, offset=1.0),
        ]
    if name == "cri3_monolayer":
        return [
            _network(state, NETWORKS[name]),
            Exchange(
                "Cr", "Cr", "linear", {"j0_ev": CRI3_J1_EV, "r0_a": 3.965, "slope_ev_per_a": 0.0},
                rcut_a=5.2, r_on_a=4.6, offset=1.0, xxz_ratio=CRI3_LAMBDA_EV / CRI3_J1_EV, xxz_axis=(0.0, 0.0, 1.0),
            ),
        ]
    if name == "cd2os2o7":
        sites = _magnetic_sites(state)
        axes = np.zeros((n, 3))
        axes[sites] = pyrochlore_local_axes(state.positions, state.cell, sites)
        return [
            _network(state, NETWORKS[name]),
            Exchange(
                "Os", "Os", "linear", {"j0_ev": CDOS_J1_EV, "r0_a": 3.596, "slope_ev_per_a": CDOS_SLOPE},
                rcut_a=5.0, r_on_a=4.4, offset=-1.0 / 3.0,
            ),
            SingleIon(k_ev=np.where(sp == "Os", CDOS_K_EV, 0.0), axes=axes),
            _pyrochlore_dmi(state, CDOS_D_OVER_J * abs(CDOS_J1_EV)),
        ]
    if name == "mgcr2o4":
        return [
            _network(state, NETWORKS[name]),
            Exchange(
                "Cr", "Cr", "linear", {"j0_ev": MGCR_J1_EV, "r0_a": 2.946, "slope_ev_per_a": MGCR_SLOPE},
                rcut_a=4.2, r_on_a=3.6, offset=-1.0 / 3.0,
            ),
            Exchange("Cr", "Cr", "constant", {"j0_ev": MGCR_J3_EV}, rcut_a=6.4, r_on_a=6.1, rmin_a=5.3, rmin_on_a=5.6),
        ]
    if name in ("bifeo3", "bifeo3_2x2x2"):
        sites = _magnetic_sites(state)
        sign = np.zeros(n)
        sign[sites] = two_colouring(state.positions, state.cell, sites)
        beta = np.log(BFO_J1_EV / BFO_J2_EV) / (0.5 * (5.588 + 5.637) - 3.968)
        i, j, d = nn_graph(state.positions, state.cell, sites)
        frac_ref = d @ np.linalg.inv(state.cell)
        c_hex = np.array([0.0, 0.0, 1.0])
        # D_ij = D0 c_hex for i in sublattice A (+1), j in B; D_ji = -D_ij
        dvec = (BFO_D0_EV * sign[i])[:, None] * c_hex
        return [
            _network(state, NETWORKS["bifeo3"]),
            Exchange(
                "Fe", "Fe", "exponential", {"j0_ev": BFO_J1_EV, "r0_a": 3.968, "beta_per_a": beta},
                rcut_a=6.4, r_on_a=6.0, offset=0.0,
            ),
            DMI(i=i, j=j, frac_ref=frac_ref, d_ev=dvec, r0_a=np.linalg.norm(d, axis=1)),
            SingleIon(k_ev=np.where(sp == "Fe", BFO_K_EV, 0.0), axes=np.tile(c_hex, (n, 1))),
        ]
    raise SpecError("preset", f"unknown preset {name!r}")


_GROUP_OF_KIND = {
    "morse": "pair", "morse_network": "pair", "exchange": "exchange", "dmi": "dmi",
    "single_ion": "anisotropy", "zeeman": "zeeman",
}


def apply_overrides(terms: list[Term], overrides: dict[str, dict[str, Any]]) -> list[Term]:
    """Switch off / rescale terms in place of a preset (see module docstring)."""
    out = []
    for term in terms:
        group = _GROUP_OF_KIND[term.kind]
        ov = overrides.get(group, {})
        if ov.get("enabled", True) is False:
            continue
        term.scale = term.scale * float(ov.get("scale", 1.0))
        if isinstance(term, Exchange):
            xov = overrides.get("xxz", {})
            if xov.get("enabled", True) is False:
                term.xxz_ratio = 0.0
            term.xxz_scale = term.xxz_scale * float(xov.get("scale", 1.0))
            if "slope_scale" in ov:
                f = float(ov["slope_scale"])
                if term.form == "linear":
                    term.params["slope_ev_per_a"] *= f
                elif term.form == "exponential":
                    term.params["beta_per_a"] *= f
                elif term.form != "constant":
                    raise SpecError(
                        "overrides.exchange.slope_scale",
                        f"only for the linear and exponential J(r) forms, this preset uses {term.form!r}",
                    )
        out.append(term)
    return out


def preset_structure(name: str, supercell: Sequence[int] = (1, 1, 1)) -> Structure:
    """The preset's reference structure times ``supercell`` (``bifeo3_2x2x2`` is bifeo3 × 2×2×2 × supercell)."""
    sc = _check_supercell(supercell)
    structure = _structure(name)
    if name == "bifeo3_2x2x2":
        sc = (2 * sc[0], 2 * sc[1], 2 * sc[2])
    if sc != (1, 1, 1):
        structure.make_supercell(list(sc))
    return structure


def make_preset(
    name: str,
    supercell: Sequence[int] = (1, 1, 1),
    overrides: dict | None = None,
    external_field_ev_per_mub: Sequence[float] | None = None,
) -> tuple[SLDState, ModelEngine]:
    """(state, engine) of preset ``name`` (one of :data:`PRESET_NAMES`).

    The state: structure × ``supercell``, moments of :data:`MOMENTS_MUB`, zero velocities, spins +z.
    ``external_field_ev_per_mub`` adds a uniform Zeeman field (eV/μB).
    """
    if name not in PRESET_NAMES:
        raise SpecError("preset", f"unknown preset {name!r}; known: {', '.join(PRESET_NAMES)}")
    ov = _check_overrides(overrides)
    structure = preset_structure(name, supercell)
    state = SLDState.from_structure(structure, moments=MOMENTS_MUB[name])
    terms = build_preset_terms(name, state)
    if external_field_ev_per_mub is not None:
        try:
            field = tuple(float(x) for x in external_field_ev_per_mub)
        except (TypeError, ValueError) as exc:
            raise SpecError(
                "external_field_ev_per_mub", f"must be 3 numbers, got {external_field_ev_per_mub!r}"
            ) from exc
        if len(field) != 3 or not np.all(np.isfinite(field)):
            raise SpecError("external_field_ev_per_mub", f"must be 3 finite numbers, got {external_field_ev_per_mub!r}")
        terms.append(Zeeman(field))
    terms = apply_overrides(terms, ov)
    label = name if not ov else f"{name} {ov}"
    return state, ModelEngine(terms, n_sites=state.n_sites, label=label)
