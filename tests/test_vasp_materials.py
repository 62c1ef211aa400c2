"""Material-aware constrained input sets: smearing, +U mixing, spin-orbit, symmetry, refused tags,
and the example INCARs of the paper's materials shown in docs/vasp_engine.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pymatgen.io.vasp.inputs import Incar, Kpoints

from sld_workflows.engines.model.presets import get_preset
from sld_workflows.engines.vasp import VaspEngine
from sld_workflows.engines.vasp.inputs import ConstrainedStaticSet, electronic_character, lmaxmix_for_u
from sld_workflows.engines.vasp.materials import EXAMPLES
from sld_workflows.errors import SpecError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "vasp_engine.md"

# what each example must carry, from the physics of the material (module docstring of materials.py)
EXPECTED = {
    #                 ISMEAR  spin-orbit  +U (LMAXMIX)
    "bcc_fe":         (1,     False,      None),
    "cri3_monolayer": (0,     True,       None),
    "cd2os2o7":       (0,     True,       None),
    "mgcr2o4":        (0,     False,      None),
    "bifeo3":         (0,     False,      4),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_input_sets_write_the_tags_their_material_needs(name, tmp_path):
    example = EXAMPLES[name]
    state = get_preset(example.preset).build_state(example.supercell)
    record = example.input_set.write(state, tmp_path)
    incar = Incar.from_file(tmp_path / "INCAR")
    ismear, soc, lmaxmix = EXPECTED[name]
    assert incar["ISMEAR"] == ismear
    assert incar["SIGMA"] == (0.1 if ismear == 1 else 0.05)
    assert incar.get("LSORBIT", False) is soc
    if soc:
        assert incar["GGA_COMPAT"] is False
    assert incar.get("LMAXMIX") == lmaxmix
    assert incar["ISYM"] == -1 and "ISPIN" not in incar and "LORBIT" not in incar
    assert incar["ENCUT"] == 500 and incar["LNONCOLLINEAR"] is True and incar["I_CONSTRAINED_M"] == 1
    magnetic_species = {s for s, m in zip(state.species, state.magnetic, strict=True) if m}
    assert magnetic_species <= set(example.input_set.rwigs)
    assert len(incar["RWIGS"]) == len(record["site_symbols"])
    assert Kpoints.from_file(tmp_path / "KPOINTS").kpts[0] == example.input_set.kpoints
    assert np.reshape(incar["M_CONSTR"], (-1, 3)).shape == (state.n_sites, 3)


def test_docs_show_exactly_the_generated_incars():
    text = DOCS.read_text()
    begin, end = "<!-- begin generated INCARs -->\n", "<!-- end generated INCARs -->"
    shown = text[text.index(begin) + len(begin):text.index(end)]
    generated = subprocess.run([sys.executable, "-m", "sld_workflows.engines.vasp.materials"],
                               capture_output=True, text=True, check=True).stdout
    assert shown == generated


@pytest.mark.parametrize(("species", "character"), [
    (["Fe"], "metal"), (["Fe", "Rh"], "metal"), (["Ir", "Mn"], "metal"),
    (["Bi", "Fe", "O"], "insulator"), (["Cr", "I"], "insulator"), (["Mg", "Cr", "O"], "insulator"),
])
def test_electronic_character_from_species(species, character):
    assert electronic_character(species) == character


def test_lmaxmix_follows_the_highest_u_channel():
    assert lmaxmix_for_u({"Bi": -1, "Fe": 2, "O": -1}) == 4
    assert lmaxmix_for_u([-1, 3]) == 6
    assert lmaxmix_for_u([-1, 1]) is None and lmaxmix_for_u(None) is None


def test_user_incar_wins_over_material_defaults(tmp_path):
    state = get_preset("bifeo3").build_state((1, 1, 1))
    iset = ConstrainedStaticSet(rwigs={"Fe": 1.3}, smearing="metal",
                                incar={"SIGMA": 0.02, "LDAU": True, "LDAUL": {"Bi": -1, "Fe": 2, "O": -1},
                                       "LDAUU": {"Bi": 0, "Fe": 4, "O": 0}, "LMAXMIX": 6})
    iset.write(state, tmp_path)
    incar = Incar.from_file(tmp_path / "INCAR")
    assert (incar["ISMEAR"], incar["SIGMA"], incar["LMAXMIX"]) == (1, 0.02, 6)


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"incar": {"ISPIN": 2}}, "incar.ISPIN"),
    ({"incar": {"lsorbit": True}}, "incar.LSORBIT"),
    ({"incar": {"ISYM": 2}}, "incar.ISYM"),
    ({"isym": 2}, "isym"),
    ({"isym": 1}, "isym"),
    ({"smearing": "cold"}, "smearing"),
    ({"spin_orbit": "yes"}, "spin_orbit"),
])
def test_bad_material_settings_name_the_key(kwargs, key):
    with pytest.raises(SpecError) as err:
        ConstrainedStaticSet(rwigs={"Fe": 1.3}, **kwargs)
    assert err.value.key == key


def test_run_spec_engine_section_carries_the_new_settings(tmp_path):
    engine = VaspEngine.from_spec({"kind": "vasp", "rwigs": {"Fe": 1.3}, "smearing": "insulator",
                                   "spin_orbit": True, "isym": 0, "command": ["sld-fake-vasp"]})
    assert (engine.input_set.smearing, engine.input_set.spin_orbit, engine.input_set.isym) == ("insulator", True, 0)
    again = VaspEngine.from_dict(engine.as_dict())
    assert again.input_set == engine.input_set
