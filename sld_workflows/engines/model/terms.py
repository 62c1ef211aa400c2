"""Hamiltonian terms of the model engine, each with analytic energy, forces, spin gradient and virial.

Conventions (docs/model_engine.md): unit spins s (the SIB midpoint may be non-unit: every term is a
polynomial in the spin vector, so its gradient is well defined there), pair-once sums, J > 0
ferromagnetic, E = −μ s·B. Every term adds to an :class:`Accumulator`:

- ``energy`` (eV);
- ``grad_r`` (N, 3): ∂E/∂r_i (eV/Å) — forces are its negative;
- ``grad_s`` (N, 3): ∂E/∂s_i (eV) — the full field is −grad_s/μ;
- ``virial`` (3, 3): ∂E/∂ε at fixed spins, Σ_pairs (∂E/∂d) ⊗ d — the stress is virial/V.

Terms:

- :class:`MorsePair` — V = D₀[e^{−2α(r−r₀)} − 2e^{−α(r−r₀)}] per species pair, shifted-force cutoff;
- :class:`MorseNetwork` — the same Morse form on fixed reference bonds, each with its own r₀;
- :class:`Exchange` — E = −Σ J(r) [(s_i·s_j − c) + λ (s_i·n)(s_j·n)] per species pair
  (Heisenberg with offset c, plus XXZ/anisotropic exchange λJ along n), J(r) of several forms,
  optionally tapered to zero between ``r_on_a`` and ``rcut_a``;
- :class:`DMI` — E = Σ_bonds f(r) D_ij·(s_i × s_j) on fixed bonds, f(r) = exp(−β(r − r₀));
- :class:`SingleIon` — E = −Σ K_i (s_i·n_i)² (K > 0 easy axis, K < 0 easy plane);
- :class:`Zeeman` — E = −Σ μ_i s_i·B.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from sld_workflows.engines.model import _kernels
from sld_workflows.engines.model.neighbors import VerletList, bond_vectors
from sld_workflows.vectors import unit_rows

EXCHANGE_FORMS = ("ma_dudarev", "bethe_slater", "linear", "exponential", "constant")
_FORM_PARAMS = {
    "ma_dudarev": ("j0_ev",),
    "bethe_slater": ("a_ev", "b", "d_a"),
    "linear": ("j0_ev", "r0_a", "slope_ev_per_a"),
    "exponential": ("j0_ev", "r0_a", "beta_per_a"),
    "constant": ("j0_ev",),
}


@dataclasses.dataclass
class Accumulator:
    n: int

    def __post_init__(self) -> None:
        self.energy = 0.0
        self.grad_r = np.zeros((self.n, 3))
        self.grad_s = np.zeros((self.n, 3))
        self.virial = np.zeros((3, 3))

    def add_pair_radial(self, i: np.ndarray, j: np.ndarray, d: np.ndarray, r: np.ndarray, de_dr: np.ndarray) -> None:
        """Add ∂E/∂r_ij contributions of pairs (d = r_j − r_i) to grad_r and the virial."""
        g = (de_dr / r)[:, None] * d  # ∂E/∂d
        n = self.n
        for k in range(3):
            col = np.bincount(j, g[:, k], minlength=n) - np.bincount(i, g[:, k], minlength=n)
            self.grad_r[:, k] += col
        self.virial += g.T @ d

    def add_spin(self, idx: np.ndarray, vec: np.ndarray) -> None:
        n = self.n
        for k in range(3):
            self.grad_s[:, k] += np.bincount(idx, vec[:, k], minlength=n)


@dataclasses.dataclass
class Context:
    """Everything a term may read for one evaluation."""

    positions: np.ndarray
    cell: np.ndarray
    pbc: tuple[bool, bool, bool]
    spins: np.ndarray
    moments: np.ndarray
    species: tuple[str, ...]


def _use_kernels(cache: dict) -> bool:
    return _kernels.HAVE_NUMBA and cache.get("accelerate", True)


def _species_pair_mask(species: tuple[str, ...], i, j, a: str, b: str, cache: dict) -> np.ndarray:
    arr, lookup = _kernels.species_codes(species, cache)
    if a not in lookup or b not in lookup:
        return np.zeros(len(i), dtype=bool)
    ca, cb = lookup[a], lookup[b]
    ci, cj = arr[i], arr[j]
    return ((ci == ca) & (cj == cb)) | ((ci == cb) & (cj == ca))


def _kernel_pairs(nl, ctx: Context, cache: dict, a: str, b: str):
    """Half pair list and species codes for a numba kernel: (i, j, shift, codes, code_a, code_b,
    single_species), or None when species a or b is absent from the structure."""
    i, j, shift = nl.update(ctx.positions, ctx.cell, ctx.pbc)
    codes, lookup = _kernels.species_codes(ctx.species, cache)
    if a not in lookup or b not in lookup:
        return None
    return i, j, shift, codes, lookup[a], lookup[b], len(lookup) == 1


def _pairs_within(nl, ctx: Context, cache: dict, a: str, b: str, rcut_a: float):
    """numpy path: pairs (i, j, d = r_j − r_i, r) of species a-b closer than ``rcut_a``."""
    i, j, d = nl.pairs(ctx.positions, ctx.cell, ctx.pbc)
    r2 = np.einsum("ij,ij->i", d, d)
    m = r2 < rcut_a**2
    if not (a == b and len(set(ctx.species)) == 1):  # one species: every pair matches
        m &= _species_pair_mask(ctx.species, i, j, a, b, cache)
    return i[m], j[m], d[m], np.sqrt(r2[m])


def _floats(x) -> np.ndarray:
    return np.asarray(x, dtype=float)


class Term:
    """Base: subclasses are dataclasses with JSON-able fields and ``kind``."""

    kind: ClassVar[str] = ""

    def as_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            d[f.name] = v.tolist() if isinstance(v, np.ndarray) else (list(v) if isinstance(v, tuple) else v)
        return d

    def add(self, ctx: Context, acc: Accumulator, cache: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class PairListTerm(Term):
    """A term over the pairs of species (``a``, ``b``) closer than ``rcut_a``, found with a cached
    Verlet list: the numba kernel when it is enabled (:meth:`add_kernel`), else numpy
    (:meth:`add_pairs`). Subclasses are dataclasses with fields ``a``, ``b`` and ``rcut_a``."""

    a: str
    b: str
    rcut_a: float

    def add(self, ctx: Context, acc: Accumulator, cache: dict) -> None:
        nl = cache.setdefault(("verlet", self.rcut_a), VerletList(self.rcut_a, cache["skin_a"]))
        if _use_kernels(cache):
            pairs = _kernel_pairs(nl, ctx, cache, self.a, self.b)
            if pairs is not None:  # None: species a or b absent
                self.add_kernel(ctx, acc, *pairs)
            return
        self.add_pairs(ctx, acc, *_pairs_within(nl, ctx, cache, self.a, self.b, self.rcut_a))

    def add_kernel(self, ctx, acc, i, j, shift, codes, ca, cb, single_species) -> None:  # pragma: no cover
        raise NotImplementedError

    def add_pairs(self, ctx, acc, i, j, d, r) -> None:  # pragma: no cover
        raise NotImplementedError


# ------------------------------------------------------------------------------------------ lattice
@dataclasses.dataclass
class MorsePair(PairListTerm):
    """Morse between species ``a`` and ``b`` with a shifted-force cutoff:
    V_sf(r) = V(r) − V(r_c) − (r − r_c)V'(r_c) for r < r_c (energy and force continuous)."""

    kind: ClassVar[str] = "morse"
    a: str
    b: str
    d0_ev: float
    alpha_per_a: float
    r0_a: float
    rcut_a: float
    scale: float = 1.0

    def _v(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e = np.exp(-self.alpha_per_a * (r - self.r0_a))
        v = self.d0_ev * (e * e - 2.0 * e)
        dv = -2.0 * self.alpha_per_a * self.d0_ev * (e * e - e)
        return v, dv

    def add_kernel(self, ctx, acc, i, j, shift, codes, ca, cb, single_species) -> None:
        acc.energy += _kernels.morse_kernel(
            ctx.positions, shift, i, j, codes, ca, cb, single_species,
            self.rcut_a, self.d0_ev, self.alpha_per_a, self.r0_a, self.scale, acc.grad_r, acc.virial,
        )

    def add_pairs(self, ctx, acc, i, j, d, r) -> None:
        v, dv = self._v(r)
        vc, dvc = self._v(np.array([self.rcut_a]))
        acc.energy += self.scale * float(np.sum(v - vc[0] - (r - self.rcut_a) * dvc[0]))
        acc.add_pair_radial(i, j, d, r, self.scale * (dv - dvc[0]))


@dataclasses.dataclass
class MorseNetwork(Term):
    """Morse springs on fixed bonds (i, j) of the reference structure, each with its own r₀
    (the reference distance), so the reference is a stress-free minimum of this term."""

    kind: ClassVar[str] = "morse_network"
    i: np.ndarray
    j: np.ndarray
    frac_ref: np.ndarray
    d0_ev: np.ndarray
    alpha_per_a: np.ndarray
    r0_a: np.ndarray
    scale: float = 1.0

    def __post_init__(self) -> None:
        self.i = np.asarray(self.i, dtype=np.intp)
        self.j = np.asarray(self.j, dtype=np.intp)
        self.frac_ref = _floats(self.frac_ref).reshape(-1, 3)
        for name in ("d0_ev", "alpha_per_a", "r0_a"):
            setattr(self, name, _floats(getattr(self, name)))

    def add(self, ctx: Context, acc: Accumulator, cache: dict) -> None:
        d = bond_vectors(self.i, self.j, self.frac_ref, ctx.positions, ctx.cell)
        r = np.sqrt(np.einsum("ij,ij->i", d, d))
        e = np.exp(-self.alpha_per_a * (r - self.r0_a))
        v = self.d0_ev * (e * e - 2.0 * e)
        dv = -2.0 * self.alpha_per_a * self.d0_ev * (e * e - e)
        acc.energy += self.scale * float(np.sum(v))
        acc.add_pair_radial(self.i, self.j, d, r, self.scale * dv)


# ------------------------------------------------------------------------------------------ spins
def radial_exchange(
    form: str, params: dict[str, float], r: np.ndarray, rcut_a: float
) -> tuple[np.ndarray, np.ndarray]:
    """J(r) (eV) and dJ/dr (eV/Å) for one of :data:`EXCHANGE_FORMS`."""
    if form == "ma_dudarev":
        x = np.clip(1.0 - r / rcut_a, 0.0, None)
        return params["j0_ev"] * x**3, -3.0 * params["j0_ev"] * x**2 / rcut_a
    if form == "bethe_slater":
        a, b, dd = params["a_ev"], params["b"], params["d_a"]
        q = (r / dd) ** 2
        e = np.exp(-q)
        jr = 4.0 * a * q * (1.0 - b * q) * e
        djr = (8.0 * a * r / dd**2) * e * (1.0 - q - b * q * (2.0 - q))
        return jr, djr
    if form == "linear":
        slope = params["slope_ev_per_a"]
        return params["j0_ev"] + slope * (r - params["r0_a"]), np.full_like(r, slope)
    if form == "exponential":
        e = params["j0_ev"] * np.exp(-params["beta_per_a"] * (r - params["r0_a"]))
        return e, -params["beta_per_a"] * e
    if form == "constant":
        return np.full_like(r, params["j0_ev"]), np.zeros_like(r)
    raise ValueError(f"exchange form must be one of {EXCHANGE_FORMS}, got {form!r}")


def taper(r: np.ndarray, r_on: float, r_cut: float) -> tuple[np.ndarray, np.ndarray]:
    """1 below r_on, ½(1 + cos πx) with x = (r − r_on)/(r_cut − r_on) up to r_cut (C¹)."""
    if r_on >= r_cut:
        return np.ones_like(r), np.zeros_like(r)
    x = np.clip((r - r_on) / (r_cut - r_on), 0.0, 1.0)
    dt = np.where((x > 0) & (x < 1), -0.5 * np.pi * np.sin(np.pi * x) / (r_cut - r_on), 0.0)
    return 0.5 * (1.0 + np.cos(np.pi * x)), dt


@dataclasses.dataclass
class Exchange(PairListTerm):
    """E = −Σ_{i<j} J(r)·t(r)·[(s_i·s_j − offset) + xxz_ratio (s_i·n)(s_j·n)] over pairs of species
    (a, b) closer than ``rcut_a``; t is the taper between ``r_on_a`` and ``rcut_a`` (none if
    r_on_a ≥ rcut_a), times an inner switch-on from 0 at ``rmin_a`` to 1 at ``rmin_on_a`` when
    ``rmin_a`` is set (a shell window, e.g. third neighbours only). ``offset`` references the energy
    (and the magnetoelastic force) to a spin correlation, e.g. 1 for a ferromagnet, −1/3 for the
    pyrochlore ground manifold."""

    kind: ClassVar[str] = "exchange"
    a: str
    b: str
    form: str
    params: dict
    rcut_a: float
    r_on_a: float | None = None
    offset: float = 0.0
    xxz_ratio: float = 0.0
    xxz_axis: tuple = (0.0, 0.0, 1.0)
    scale: float = 1.0
    xxz_scale: float = 1.0
    rmin_a: float | None = None
    rmin_on_a: float | None = None

    def __post_init__(self) -> None:
        if (self.rmin_a is None) != (self.rmin_on_a is None):
            raise ValueError("exchange: give both rmin_a and rmin_on_a, or neither")
        if self.rmin_a is not None and not (0 <= self.rmin_a < self.rmin_on_a <= self.r_on_a_or_cut):
            raise ValueError("exchange: need 0 <= rmin_a < rmin_on_a <= r_on_a")
        if self.form not in EXCHANGE_FORMS:
            raise ValueError(f"exchange form must be one of {EXCHANGE_FORMS}, got {self.form!r}")
        need = set(_FORM_PARAMS[self.form])
        if set(self.params) != need:
            raise ValueError(f"exchange form {self.form!r} needs params {sorted(need)}, got {sorted(self.params)}")
        self.params = {k: float(v) for k, v in self.params.items()}
        self.xxz_axis = tuple(float(x) for x in self.xxz_axis)
        axis = _floats(self.xxz_axis)
        if axis.shape != (3,) or np.linalg.norm(axis) == 0:
            raise ValueError("exchange: xxz_axis must be a non-zero 3-vector")
        self._n = axis / np.linalg.norm(axis)
        if self.r_on_a is None:
            self.r_on_a = self.rcut_a

    @property
    def r_on_a_or_cut(self) -> float:
        return self.rcut_a if self.r_on_a is None else self.r_on_a

    def j_of_r(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        jr, djr = radial_exchange(self.form, self.params, r, self.rcut_a)
        t, dt = taper(r, self.r_on_a, self.rcut_a)
        if self.rmin_a is not None:
            tin, dtin = taper(r, self.rmin_a, self.rmin_on_a)
            t, dt = t * (1.0 - tin), dt * (1.0 - tin) - t * dtin
        return self.scale * jr * t, self.scale * (djr * t + jr * dt)

    def add_kernel(self, ctx, acc, i, j, shift, codes, ca, cb, single_species) -> None:
        p = np.array([self.params[k] for k in _FORM_PARAMS[self.form]] + [0.0] * 3)
        inner = self.rmin_a is not None
        n = self._n
        acc.energy += _kernels.exchange_kernel(
            ctx.positions, shift, i, j, codes, ca, cb, np.ascontiguousarray(ctx.spins),
            _kernels.FORM_CODES[self.form], p, self.rcut_a, self.r_on_a,
            self.rmin_a if inner else 0.0, self.rmin_on_a if inner else 0.0, inner,
            self.offset, self.xxz_ratio * self.xxz_scale, n[0], n[1], n[2], self.scale,
            acc.grad_r, acc.grad_s, acc.virial,
        )

    def add_pairs(self, ctx, acc, i, j, d, r) -> None:
        jr, djr = self.j_of_r(r)
        si, sj = ctx.spins[i], ctx.spins[j]
        corr = np.einsum("ij,ij->i", si, sj) - self.offset
        lam = self.xxz_ratio * self.xxz_scale
        gi, gj = sj, si
        if lam != 0.0:
            n = self._n
            sni, snj = si @ n, sj @ n
            corr = corr + lam * sni * snj
            gi = sj + lam * snj[:, None] * n
            gj = si + lam * sni[:, None] * n
        acc.energy -= float(np.sum(jr * corr))
        acc.add_pair_radial(i, j, d, r, -djr * corr)
        acc.add_spin(i, -jr[:, None] * gi)
        acc.add_spin(j, -jr[:, None] * gj)


@dataclasses.dataclass
class DMI(Term):
    """E = Σ_bonds f(r) D_ij·(s_i × s_j) on fixed reference bonds, f(r) = exp(−β(r − r₀))."""

    kind: ClassVar[str] = "dmi"
    i: np.ndarray
    j: np.ndarray
    frac_ref: np.ndarray
    d_ev: np.ndarray
    r0_a: np.ndarray
    beta_per_a: float = 0.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        self.i = np.asarray(self.i, dtype=np.intp)
        self.j = np.asarray(self.j, dtype=np.intp)
        self.frac_ref = _floats(self.frac_ref).reshape(-1, 3)
        self.d_ev = _floats(self.d_ev).reshape(-1, 3)
        self.r0_a = _floats(self.r0_a)

    def add(self, ctx: Context, acc: Accumulator, cache: dict) -> None:
        d = bond_vectors(self.i, self.j, self.frac_ref, ctx.positions, ctx.cell)
        r = np.sqrt(np.einsum("ij,ij->i", d, d))
        f = self.scale * np.exp(-self.beta_per_a * (r - self.r0_a))
        dvec = f[:, None] * self.d_ev
        si, sj = ctx.spins[self.i], ctx.spins[self.j]
        e = np.einsum("ij,ij->i", dvec, np.cross(si, sj))
        acc.energy += float(np.sum(e))
        if self.beta_per_a != 0.0:
            acc.add_pair_radial(self.i, self.j, d, r, -self.beta_per_a * e)
        acc.add_spin(self.i, np.cross(sj, dvec))
        acc.add_spin(self.j, np.cross(dvec, si))


@dataclasses.dataclass
class SingleIon(Term):
    """E = −Σ_i K_i (s_i·n_i)²; per-site K (eV) and unit axes n_i."""

    kind: ClassVar[str] = "single_ion"
    k_ev: np.ndarray
    axes: np.ndarray
    scale: float = 1.0

    def __post_init__(self) -> None:
        self.k_ev = _floats(self.k_ev)
        self.axes = _floats(self.axes).reshape(-1, 3)
        self._n = unit_rows(self.axes)

    def add(self, ctx: Context, acc: Accumulator, cache: dict) -> None:
        if len(self.k_ev) != len(ctx.spins):
            raise ValueError(f"single_ion: {len(self.k_ev)} sites in the term, {len(ctx.spins)} in the state")
        k = self.scale * self.k_ev
        p = np.einsum("ij,ij->i", ctx.spins, self._n)
        acc.energy -= float(np.sum(k * p * p))
        acc.grad_s -= (2.0 * k * p)[:, None] * self._n


@dataclasses.dataclass
class Zeeman(Term):
    """E = −Σ_i μ_i s_i·B with a uniform field B (eV/μB)."""

    kind: ClassVar[str] = "zeeman"
    field_ev_per_mub: tuple
    scale: float = 1.0

    def __post_init__(self) -> None:
        self.field_ev_per_mub = tuple(float(x) for x in self.field_ev_per_mub)
        if len(self.field_ev_per_mub) != 3:
            raise ValueError("zeeman: field_ev_per_mub needs 3 components")

    def add(self, ctx: Context, acc: Accumulator, cache: dict) -> None:
        b = self.scale * np.asarray(self.field_ev_per_mub)
        acc.energy -= float(np.sum(ctx.moments * (ctx.spins @ b)))
        acc.grad_s -= ctx.moments[:, None] * b


TERM_KINDS: dict[str, type[Term]] = {
    cls.kind: cls for cls in (MorsePair, MorseNetwork, Exchange, DMI, SingleIon, Zeeman)
}


def term_from_dict(d: dict[str, Any]) -> Term:
    d = dict(d)
    kind = d.pop("kind", None)
    if kind not in TERM_KINDS:
        raise ValueError(f"unknown model term kind {kind!r}; known: {sorted(TERM_KINDS)}")
    cls = TERM_KINDS[kind]
    if "xxz_axis" in d:
        d["xxz_axis"] = tuple(d["xxz_axis"])
    return cls(**d)
