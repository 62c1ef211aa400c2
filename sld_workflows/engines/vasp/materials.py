"""Example constrained-moment VASP input sets for the paper's materials and BiFeO3.

Cells, k-meshes and the 500 eV cutoff are the paper's Table I; the rest is typical practice, chosen
for what each material needs in SLD (not fitted here, and no substitute for convergence tests):

- bcc Fe: a metal (Methfessel-Paxton smearing), no +U, no spin-orbit coupling: its ferromagnetism
  comes from exchange alone.
- CrI3 monolayer: an insulator (Gaussian smearing); its out-of-plane easy axis is a spin-orbit
  effect, so ``spin_orbit`` is on (without it every direction costs the same energy).
- Cd2Os2O7: a 5d oxide whose all-in-all-out order is selected by spin-orbit coupling (DMI and
  single-ion anisotropy of Os): ``spin_orbit`` on, Gaussian smearing.
- MgCr2O4: an insulating spinel; the q = 0 order and the tetragonal distortion come from exchange
  and magnetoelastic coupling, so no spin-orbit coupling.
- BiFeO3 (80 atoms, 16 Fe): Dudarev +U on Fe d (U_eff = 4 eV, the most common choice for BiFeO3),
  which makes the input set add LMAXMIX = 4; Gaussian smearing; spin-orbit off as in typical
  training-data sets (switch it on for the DMI canting).

RWIGS are typical sphere radii close to the PAW datasets' own (Fe 1.30, Cr 1.32, Os 1.43 Å):
check them against your POTCARs. ``python -m sld_workflows.engines.vasp.materials`` prints the
INCARs shown in docs/vasp_engine.md (a test keeps the two identical).
"""

from __future__ import annotations

import dataclasses

from sld_workflows.engines.vasp.inputs import ConstrainedStaticSet


@dataclasses.dataclass(frozen=True)
class MaterialInputs:
    """One documented example: the model preset giving the structure, its supercell, the input set."""

    preset: str
    supercell: tuple[int, int, int]
    input_set: ConstrainedStaticSet


_TABLE_I = {"ENCUT": 500}

EXAMPLES: dict[str, MaterialInputs] = {
    "bcc_fe": MaterialInputs("bcc_fe", (2, 2, 2), ConstrainedStaticSet(
        rwigs={"Fe": 1.30}, lambda_=10.0, incar=dict(_TABLE_I), kpoints=(4, 4, 4))),
    "cri3_monolayer": MaterialInputs("cri3_monolayer", (2, 2, 1), ConstrainedStaticSet(
        rwigs={"Cr": 1.32}, lambda_=10.0, incar=dict(_TABLE_I), kpoints=(2, 2, 1), spin_orbit=True)),
    "cd2os2o7": MaterialInputs("cd2os2o7", (1, 1, 1), ConstrainedStaticSet(
        rwigs={"Os": 1.43}, lambda_=10.0, incar=dict(_TABLE_I), kpoints=(2, 2, 2), spin_orbit=True)),
    "mgcr2o4": MaterialInputs("mgcr2o4", (1, 1, 1), ConstrainedStaticSet(
        rwigs={"Cr": 1.32}, lambda_=10.0, incar=dict(_TABLE_I), kpoints=(3, 3, 3))),
    "bifeo3": MaterialInputs("bifeo3_2x2x2", (1, 1, 1), ConstrainedStaticSet(
        rwigs={"Fe": 1.30}, lambda_=10.0, kpoints=(2, 2, 2),
        incar={**_TABLE_I, "LDAU": True, "LDAUTYPE": 2, "LDAUL": {"Bi": -1, "Fe": 2, "O": -1},
               "LDAUU": {"Bi": 0.0, "Fe": 4.0, "O": 0.0}, "LDAUJ": {"Bi": 0.0, "Fe": 0.0, "O": 0.0}})),
}


def example_incar(name: str) -> str:
    """The INCAR text the example input set ``name`` writes for its preset structure (spins +z)."""
    from pymatgen.io.vasp.inputs import Poscar

    from sld_workflows.engines.model.presets import get_preset

    example = EXAMPLES[name]
    state = get_preset(example.preset).build_state(example.supercell)
    symbols = list(Poscar(state.structure).site_symbols)
    incar = example.input_set.incar_for(state, symbols, wavecar=False, chgcar=False)
    # M_CONSTR and MAGMOM are 3 numbers per ion: summarised so that the INCAR stays readable
    shown = {k: v for k, v in incar.items() if k not in ("M_CONSTR", "MAGMOM")}
    text = "\n".join(f"{k} = {_incar_value(v)}" for k, v in sorted(shown.items()))
    return text + f"\nM_CONSTR = ... ({state.n_sites} x 3 values)\nMAGMOM = ... ({state.n_sites} x 3 values)\n"


def _incar_value(value) -> str:
    if isinstance(value, bool):
        return ".TRUE." if value else ".FALSE."
    if isinstance(value, list | tuple):
        return " ".join(_incar_value(v) for v in value)
    return str(value)


def main() -> None:
    for name, example in EXAMPLES.items():
        kp = "x".join(map(str, example.input_set.kpoints))
        print(f"### {name} ({example.preset} x {'x'.join(map(str, example.supercell))}, "
              f"{example.input_set.kpoints_style}-centred {kp} k)\n\n```\n{example_incar(name)}```\n")


if __name__ == "__main__":
    main()
