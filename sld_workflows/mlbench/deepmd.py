"""DeePMD-kit spin-model adapter: writes DeePMD npy systems and the ``dp --pt train`` input, runs ``dp``.

System layout (DeePMD-kit ``doc/model/train-energy-spin.md``, PyTorch backend): ``type.raw``,
``type_map.raw``, ``set.000/{box,coord,energy,force,spin,force_mag}.npy`` with ``spin`` the moment
vectors (μB, zero on non-magnetic atoms) and ``force_mag`` = −∂E/∂M (eV/μB; the doc's table says eV/Å,
the code multiplies the virtual-atom force by ``virtual_scale``, Å/μB). We write the arrays with numpy
rather than dpdata because dpdata is not a dependency and the six files are plain arrays.

Measured elsewhere on this model system (issue 14): 0.13–0.17 s per training step on one core and ~10⁵
steps for a usable spin model — hours per model; for users with the hardware. Without ``dp`` on PATH,
:meth:`DeepMDTrainer.fit` fails with one line saying so; :func:`write_inputs` works without it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from sld_workflows.mlbench import BenchmarkError
from sld_workflows.mlbench.frames import FrameSet


@dataclasses.dataclass
class DeepMDSettings:
    work_dir: str = "deepmd_work"
    numb_steps: int = 100_000
    rcut_a: float = 6.0
    sel: int = 120
    virtual_scale: float = 0.3140
    seed: int = 1


def write_system(fs: FrameSet, path: str | Path) -> Path:
    """One DeePMD npy system (all frames of ``fs``: same atoms in the same order)."""
    from ase.data import chemical_symbols

    path = Path(path)
    (path / "set.000").mkdir(parents=True, exist_ok=True)
    species = np.unique(fs.numbers)
    type_map = [chemical_symbols[z] for z in species]
    (path / "type_map.raw").write_text("\n".join(type_map) + "\n")
    (path / "type.raw").write_text("\n".join(str(int(t)) for t in np.searchsorted(species, fs.numbers)) + "\n")
    f = len(fs)
    arrays = {"box": fs.cells.reshape(f, 9), "coord": fs.positions.reshape(f, -1), "energy": fs.energy_ev,
              "force": fs.forces_ev_per_a.reshape(f, -1), "spin": fs.magmom_mub.reshape(f, -1),
              "force_mag": fs.magforces_ev_per_mub.reshape(f, -1)}
    for name, value in arrays.items():
        np.save(path / "set.000" / f"{name}.npy", np.asarray(value, dtype=float))
    return path


def input_json(type_map: list[str], magnetic_types: list[bool], train_systems: list[str],
               validation_systems: list[str], st: DeepMDSettings) -> dict[str, Any]:
    """The ``dp --pt train`` input of a spin energy model (se_e2_a descriptor, loss ``ener_spin``)."""
    return {
        "model": {
            "type_map": type_map,
            "descriptor": {"type": "se_e2_a", "sel": [st.sel] * len(type_map), "rcut_smth": st.rcut_a - 0.5,
                           "rcut": st.rcut_a, "neuron": [25, 50, 100], "axis_neuron": 16, "seed": st.seed},
            "fitting_net": {"neuron": [240, 240, 240], "resnet_dt": True, "seed": st.seed},
            "spin": {"use_spin": magnetic_types, "virtual_scale": [st.virtual_scale] * sum(magnetic_types)},
        },
        "learning_rate": {"type": "exp", "decay_steps": 5000, "start_lr": 1e-3, "stop_lr": 3.5e-8},
        "loss": {"type": "ener_spin", "start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_fr": 1000,
                 "limit_pref_fr": 1, "start_pref_fm": 10000, "limit_pref_fm": 10, "start_pref_v": 0,
                 "limit_pref_v": 0},
        "training": {"training_data": {"systems": train_systems, "batch_size": "auto"},
                     "validation_data": {"systems": validation_systems, "batch_size": 1, "numb_btch": 3},
                     "numb_steps": st.numb_steps, "seed": st.seed, "disp_freq": 100, "save_freq": 1000},
    }


def write_inputs(train: FrameSet, validation: FrameSet | None, work_dir: str | Path,
                 settings: DeepMDSettings | None = None) -> Path:
    """Systems ``train/`` (and ``valid/``) and ``input.json`` in ``work_dir``; returns the input path."""
    from ase.data import chemical_symbols

    st = settings or DeepMDSettings()
    work = Path(work_dir)
    write_system(train, work / "train")
    systems_val = ["train"]
    if validation is not None and len(validation):
        write_system(validation, work / "valid")
        systems_val = ["valid"]
    species = np.unique(train.numbers)
    magnetic = [bool(np.any(train.magnetic[train.numbers == z])) for z in species]
    config = input_json([chemical_symbols[z] for z in species], magnetic, ["train"], systems_val, st)
    path = work / "input.json"
    path.write_text(json.dumps(config, indent=2))
    return path


class DeepMDTrainer:
    """Trains with ``dp --pt train`` in ``work_dir`` (then freezes); needs DeePMD-kit ≥ 3 on PATH."""

    name = "deepmd"

    def __init__(self, settings: DeepMDSettings | None = None, **options) -> None:
        self.settings = settings or DeepMDSettings(**options)

    def check(self) -> str:
        """The path of ``dp``, or one line saying it is missing."""
        dp = shutil.which("dp")
        if dp is None:
            raise BenchmarkError("trainer 'deepmd': DeePMD-kit's `dp` is not installed (pip install deepmd-kit; "
                                 "hours per model on CPU), use 'spinnet' or 'ridge' here")
        return dp

    def fit(self, train: FrameSet, validation: FrameSet | None = None, seed: int = 0):
        dp = self.check()
        st = dataclasses.replace(self.settings, seed=seed + 1)
        work = Path(st.work_dir) / f"seed{seed}_{train.name}_{len(train)}"
        write_inputs(train, validation, work, st)
        for args in (["--pt", "train", "input.json"], ["--pt", "freeze", "-o", "model.pth"]):
            done = subprocess.run([dp, *args], cwd=work, capture_output=True, text=True)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                raise BenchmarkError(f"trainer 'deepmd': dp {' '.join(args)} failed in {work}: {tail[0]}")
        return DeepMDModel(work / "model.pth", np.unique(train.numbers))


class DeepMDModel:
    """A frozen DeePMD spin model evaluated through ``deepmd.infer.DeepPot`` (``eval(..., spin=...)`` of
    DeePMD-kit 3 returns energy, force, virial, magnetic force, mask). Not exercised on this machine."""

    def __init__(self, path: Path, species: np.ndarray) -> None:
        from deepmd.infer import DeepPot

        self.path, self.species, self.potential = path, species, DeepPot(str(path))

    def predict(self, fs: FrameSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = len(fs)
        out = self.potential.eval(fs.positions.reshape(f, -1), fs.cells.reshape(f, 9),
                                  np.searchsorted(self.species, fs.numbers), spin=fs.magmom_mub.reshape(f, -1))
        if len(out) < 4:
            raise BenchmarkError(f"trainer 'deepmd': {self.path} is not a spin model (no magnetic force output)")
        return (np.asarray(out[0]).reshape(f), np.asarray(out[1]).reshape(f, fs.n_atoms, 3),
                np.asarray(out[3]).reshape(f, fs.n_atoms, 3))
