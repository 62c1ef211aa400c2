"""A compact spin-aware network (PyTorch): per-atom lattice descriptors + Heisenberg-style Fe–Fe spin
descriptors → one small MLP per species → atomic energies. Forces −∂E/∂r and magnetic forces −∂E/∂M come
from autograd of the same energy (the magnetic force is transverse by construction: E depends on M only
through ŝ = M/|M|). fp32, one thread, seeded: the same data and seed give the same model.

Descriptors of atom i (radial basis g_k of :mod:`.features`, cutoff 6.2 Å):

- lattice: G_i[s, k] = Σ_{j of species s} g_k(r_ij) (species-resolved radial density);
- spin (magnetic sites): H_i[k] = Σ_{j magnetic} (ŝ_i·ŝ_j) g_k(r_ij), and the six components of ŝ_i⊗ŝ_i
  (single-ion anisotropy in the crystal frame).

With 3 species, 8 basis functions and 60 hidden units: 3 × (6061 + 39) = 18,300 parameters (MLP plus a
linear path per species, which alone spans the ridge control's features).
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from sld_workflows.mlbench.features import RadialBasis, half_pairs
from sld_workflows.mlbench.frames import FrameSet

#: atomic-energy unit of the network output (eV)
E_SCALE = 1e-2


@dataclasses.dataclass
class SpinNetSettings:
    basis: RadialBasis = dataclasses.field(default_factory=RadialBasis)
    hidden: int = 60
    epochs: int = 40
    batch_frames: int = 8
    learning_rate: float = 3e-3
    #: label scales in the loss (eV/atom, eV/Å, eV/μB), as the ridge control
    energy_scale_ev: float = 1e-3
    force_scale_ev_per_a: float = 0.3
    magforce_scale_ev_per_mub: float = 0.01
    threads: int = 1
    #: fit the ridge control first and train the network on its residuals (prediction = ridge + network):
    #: the network then only has to learn what pair + s·s features miss, which few epochs can do
    ridge_baseline: bool = True


def _torch():
    try:
        import torch
    except ImportError as exc:
        from sld_workflows.mlbench import BenchmarkError

        raise BenchmarkError(
            "trainer 'spinnet' needs PyTorch: pip install 'sld_workflows[ml]' (torch 2.13 CPU)") from exc
    return torch


class _Batch:
    """Frames concatenated for one forward pass (tensors on CPU, fp32)."""

    def __init__(self, torch, fs: FrameSet, frames: np.ndarray, basis: RadialBasis, kind: np.ndarray):
        n = fs.n_atoms
        b = len(frames)
        ii, jj, nn, ff = [], [], [], []
        for slot, f in enumerate(frames):
            i, j, img = fs.cached(f"spinnet-pairs {basis.r_cut_a}", f, lambda f: half_pairs(fs, f, basis.r_cut_a))
            ii.append(i.astype(np.int64) + slot * n)
            jj.append(j.astype(np.int64) + slot * n)
            nn.append(img)
            ff.append(np.full(len(i), slot))
        t = torch.as_tensor
        self.n, self.b = n, b
        self.i, self.j = t(np.concatenate(ii)), t(np.concatenate(jj))
        self.image = t(np.concatenate(nn).astype(np.float32))
        self.pair_frame = t(np.concatenate(ff))
        self.cell = t(fs.cells[frames].astype(np.float32))
        self.positions = t(fs.positions[frames].reshape(-1, 3).astype(np.float32)).requires_grad_(True)
        self.magmom = t(fs.magmom_mub[frames].reshape(-1, 3).astype(np.float32)).requires_grad_(True)
        self.kind = t(np.tile(kind, b))
        self.energy = t(fs.energy_ev[frames].astype(np.float64))
        self.forces = t(fs.forces_ev_per_a[frames].reshape(-1, 3).astype(np.float32))
        self.magforces = t(fs.magforces_ev_per_mub[frames].reshape(-1, 3).astype(np.float32))
        self.magnetic = t(np.tile(fs.magnetic, b))


class _Net:
    """Parameters and energy function (a plain container so that the torch import stays lazy)."""

    def __init__(self, torch, n_species: int, settings: SpinNetSettings, seed: int) -> None:
        torch.manual_seed(seed)
        k = settings.basis.n_basis
        self.n_in = n_species * k + k + 6
        self.n_species, self.k = n_species, k
        nn = torch.nn
        self.mlps = nn.ModuleList([
            nn.Sequential(nn.Linear(self.n_in, settings.hidden), nn.SiLU(),
                          nn.Linear(settings.hidden, settings.hidden), nn.SiLU(), nn.Linear(settings.hidden, 1))
            for _ in range(n_species)])
        # a linear path per species: the sum of its outputs spans the ridge control's features exactly
        self.linear = nn.ModuleList([nn.Linear(self.n_in, 1) for _ in range(n_species)])
        self.modules = nn.ModuleList([self.mlps, self.linear])
        basis = settings.basis
        self.centres = torch.as_tensor(basis.centres_a, dtype=torch.float32)
        self.width, self.r_cut = float(basis.width_a), float(basis.r_cut_a)
        self.mean = torch.zeros(n_species, self.n_in)
        self.std = torch.ones(n_species, self.n_in)
        self.e_shift = torch.zeros(n_species, dtype=torch.float64)
        self.e_scale = 1.0
        self.torch = torch

    def descriptors(self, batch: _Batch):
        torch = self.torch
        pos = batch.positions
        d = pos[batch.j] - pos[batch.i] + torch.einsum("pk,pkl->pl", batch.image, batch.cell[batch.pair_frame])
        r = torch.linalg.norm(d, dim=1)
        x = (r[:, None] - self.centres) / self.width
        g = torch.exp(-x * x) * (0.5 * (1.0 + torch.cos(torch.pi * r / self.r_cut)))[:, None]
        n_atoms, s, k = len(batch.kind), self.n_species, self.k
        lattice = torch.zeros(n_atoms * s, k)
        lattice = lattice.index_add(0, batch.i * s + batch.kind[batch.j], g)
        lattice = lattice.index_add(0, batch.j * s + batch.kind[batch.i], g)
        mu = torch.linalg.norm(batch.magmom, dim=1, keepdim=True)
        spins = batch.magmom / torch.where(mu > 0, mu, torch.ones_like(mu))
        dot = (spins[batch.i] * spins[batch.j]).sum(dim=1)
        both = (batch.magnetic[batch.i] & batch.magnetic[batch.j]).to(g.dtype)
        sg = (dot * both)[:, None] * g
        heis = torch.zeros(n_atoms, k).index_add(0, batch.i, sg).index_add(0, batch.j, sg)
        a, b = torch.triu_indices(3, 3)
        aniso = spins[:, a] * spins[:, b]
        return torch.cat([lattice.reshape(n_atoms, s * k), heis, aniso], dim=1)

    def energy(self, batch: _Batch):
        torch = self.torch
        desc = self.descriptors(batch)
        kind = batch.kind
        x = (desc - self.mean[kind]) / self.std[kind]
        atomic = torch.zeros(len(kind))
        for s, (mlp, linear) in enumerate(zip(self.mlps, self.linear, strict=True)):
            sel = kind == s
            if bool(sel.any()):
                xs = x[sel]
                atomic = atomic.index_put((sel.nonzero()[:, 0],), (mlp(xs) + linear(xs))[:, 0])
        per_frame = atomic.reshape(batch.b, batch.n).sum(dim=1).to(torch.float64) * self.e_scale
        return per_frame + self.e_shift[kind].reshape(batch.b, batch.n).sum(dim=1)

    def predict(self, batch: _Batch, create_graph: bool):
        torch = self.torch
        e = self.energy(batch)
        grad_r, grad_m = torch.autograd.grad(e.sum(), [batch.positions, batch.magmom], create_graph=create_graph)
        return e, -grad_r, -grad_m


def _residuals(fs: FrameSet, baseline) -> FrameSet:
    """``fs`` with the labels minus the baseline's predictions (geometry and caches shared)."""
    e, f, m = baseline.predict(fs, cache=False)
    return dataclasses.replace(fs, energy_ev=fs.energy_ev - e, forces_ev_per_a=fs.forces_ev_per_a - f,
                               magforces_ev_per_mub=fs.magforces_ev_per_mub - m)


class SpinNetModel:
    def __init__(self, net: _Net, settings: SpinNetSettings, species: np.ndarray, baseline=None) -> None:
        self.net, self.settings, self.species, self.baseline = net, settings, species, baseline

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.net.modules.parameters())

    def predict(self, fs: FrameSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        torch = self.net.torch
        kind = np.searchsorted(self.species, fs.numbers)
        out_e, out_f, out_m = [], [], []
        for start in range(0, len(fs), self.settings.batch_frames):
            frames = np.arange(start, min(start + self.settings.batch_frames, len(fs)))
            batch = _Batch(torch, fs, frames, self.settings.basis, kind)
            e, f, m = self.net.predict(batch, create_graph=False)
            out_e.append(e.detach().numpy())
            out_f.append(f.detach().numpy().reshape(len(frames), fs.n_atoms, 3))
            out_m.append(m.detach().numpy().reshape(len(frames), fs.n_atoms, 3))
        e, f, m = np.concatenate(out_e), np.concatenate(out_f).astype(float), np.concatenate(out_m).astype(float)
        if self.baseline is not None:
            be, bf, bm = self.baseline.predict(fs)
            e, f, m = e + be, f + bf, m + bm
        return e, f, m


class SpinNetTrainer:
    """Adam on the scaled squared errors of energy, forces and transverse magnetic forces; the epoch
    with the lowest validation loss is kept (the last epoch without a validation set)."""

    name = "spinnet"

    def __init__(self, settings: SpinNetSettings | None = None, **options) -> None:
        self.settings = settings or SpinNetSettings(**options)

    def check(self) -> None:
        _torch()

    def fit(self, train: FrameSet, validation: FrameSet | None = None, seed: int = 0) -> SpinNetModel:
        torch = _torch()
        st = self.settings
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(st.threads)
        try:
            return self._fit(torch, train, validation, seed)
        finally:
            torch.set_num_threads(previous_threads)

    def _loss(self, torch, net: _Net, batch: _Batch, create_graph: bool):
        st = self.settings
        e, f, m = net.predict(batch, create_graph=create_graph)
        le = torch.mean(((e - batch.energy) / (batch.n * st.energy_scale_ev)) ** 2)
        lf = torch.mean((f - batch.forces) ** 2) / st.force_scale_ev_per_a**2
        mag = batch.magnetic
        lm = torch.mean((m[mag] - batch.magforces[mag]) ** 2) / st.magforce_scale_ev_per_mub**2
        return le.float() + lf + lm

    def _fit(self, torch, train: FrameSet, validation: FrameSet | None, seed: int) -> SpinNetModel:
        st = self.settings
        baseline = None
        if st.ridge_baseline:
            from sld_workflows.mlbench.ridge import RidgeSettings, RidgeTrainer

            baseline = RidgeTrainer(RidgeSettings(energy_scale_ev=st.energy_scale_ev,
                                                  force_scale_ev_per_a=st.force_scale_ev_per_a,
                                                  magforce_scale_ev_per_mub=st.magforce_scale_ev_per_mub)).fit(train)
            train = _residuals(train, baseline)
            validation = None if validation is None or not len(validation) else _residuals(validation, baseline)
        species = np.unique(train.numbers)
        kind = np.searchsorted(species, train.numbers)
        net = _Net(torch, len(species), st, seed)
        # descriptor standardisation and energy shift from the training frames
        with torch.no_grad():
            descs = []
            for start in range(0, len(train), st.batch_frames):
                batch = _Batch(torch, train, np.arange(start, min(start + st.batch_frames, len(train))), st.basis, kind)
                descs.append(net.descriptors(batch).detach())
            desc = torch.cat(descs)
            kinds = torch.as_tensor(np.tile(kind, len(train)))
            for s in range(len(species)):
                net.mean[s] = desc[kinds == s].mean(dim=0)
                net.std[s] = desc[kinds == s].std(dim=0).clamp_min(1e-3)
        counts = np.bincount(kind, minlength=len(species))
        net.e_shift[:] = float(np.mean(train.energy_ev)) / counts.sum()
        net.e_scale = E_SCALE
        optimiser = torch.optim.Adam(net.modules.parameters(), lr=st.learning_rate)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(st.epochs, 1))
        rng = np.random.default_rng([seed, 23])
        best, best_state = np.inf, None
        val_kind = None if validation is None or len(validation) == 0 else np.searchsorted(species, validation.numbers)
        for _epoch in range(st.epochs):
            order = rng.permutation(len(train))
            for start in range(0, len(order), st.batch_frames):
                batch = _Batch(torch, train, order[start:start + st.batch_frames], st.basis, kind)
                optimiser.zero_grad()
                loss = self._loss(torch, net, batch, create_graph=True)
                loss.backward()
                optimiser.step()
            schedule.step()
            if val_kind is not None:
                total = 0.0
                for start in range(0, len(validation), st.batch_frames):
                    frames = np.arange(start, min(start + st.batch_frames, len(validation)))
                    batch = _Batch(torch, validation, frames, st.basis, val_kind)
                    total += float(self._loss(torch, net, batch, create_graph=False).detach()) * len(frames)
                if total < best:
                    best, best_state = total, copy.deepcopy(net.modules.state_dict())
        if best_state is not None:
            net.modules.load_state_dict(best_state)
        return SpinNetModel(net, st, species, baseline)
