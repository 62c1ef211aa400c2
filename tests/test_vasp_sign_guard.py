"""The per-run guard on the sign of VASP's constraining field: the printed λ·MW⊥ must point along
MW⊥ computed from the printed MW table and the constraint direction. The stand-in leans MW along its
field as a real moment does (MW⊥ = P/λ), and can be told to print the opposite sign."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_vasp_engine import fake_vasp_env, initial_system, vasp_engine  # noqa: F401  (fixture)

from sld_workflows.engines.vasp import VaspRunError
from sld_workflows.engines.vasp.conventions import MW_PERP_RESOLVABLE, field_direction_cosines
from sld_workflows.engines.vasp.oszicar import parse_constrained_oszicar
from sld_workflows.engines.vasp.parsers import field_sign_guard
from sld_workflows.errors import SLDError

pytestmark = pytest.mark.filterwarnings("ignore:No POTCAR file with matching TITEL")
DATA = Path(__file__).parent / "data" / "vasp"


def test_cosines_see_a_flipped_field_and_skip_unresolvable_ions():
    e = np.array([[0, 0, 1.0], [0, 0, 1.0], [1.0, 0, 0]])
    mw = np.array([[0.02, 0, 2.0], [0.0001, 0, 2.0], [2.0, 0.0, 0.03]])
    p = np.array([[0.2, 0.01, 0], [0.001, 0, 0], [0, 0, -0.3]])
    cos = field_direction_cosines(p, mw, e)
    assert cos[0] == pytest.approx(0.2 / np.hypot(0.2, 0.01), rel=1e-12)
    assert np.isnan(cos[1])  # |MW⊥| = 1e-4 < the printed precision of MW
    assert cos[2] == pytest.approx(-1.0)
    assert MW_PERP_RESOLVABLE == pytest.approx(4 * np.sqrt(3) * 5e-4)


@pytest.mark.parametrize("name", ["OSZICAR.FeRh_icm1_soc_vasp6.6.0", "OSZICAR.IrMn3_icm4_vasp6.6.0"])
def test_real_vasp_files_pass_the_guard_with_nothing_resolvable(name):
    """Both samples are converged at stiff λ: their MW⊥ (≤ 3e-4 μB) is below MW's printed precision,
    so the guard has nothing to check and says so; it does not invent a verdict."""
    step = parse_constrained_oszicar(DATA / name).final
    directions = np.where(step.in_block[:, None], step.mw, 0.0)  # constraint ≈ MW direction at convergence
    assert field_sign_guard("sample", step, directions) == {"checked_ions": 0, "min_cos": None}


@pytest.mark.usefixtures("fake_vasp_env")
def test_stand_in_fields_pass_the_guard_and_a_flipped_sign_is_refused(tmp_path, monkeypatch):
    state, _ = initial_system()
    engine = vasp_engine(tmp_path / "ok", **{"lambda": 1.0})  # soft λ: MW⊥ = P/λ resolvable at 3 decimals
    ev = engine.evaluate(state)
    guard = ev.info["field_sign_guard"]
    assert guard["checked_ions"] >= state.n_sites // 2
    assert guard["min_cos"] > 0.97  # rounding of MW turns MW⊥ by at most ~14° (cos 0.97)

    monkeypatch.setenv("SLD_FAKE_VASP_FLIP_FIELD", "1")
    flipped = vasp_engine(tmp_path / "flipped", **{"lambda": 1.0})
    with pytest.raises((SLDError, VaspRunError), match="does not point along MW_perp"):
        flipped.evaluate(state)
