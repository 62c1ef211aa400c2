"""The shared conventions, each written once: unit directions, the JSON sanitiser and the VASP
constrained-moment rules (the engine's parser and the stand-in both use these functions, so here
each is checked against an independent statement of the rule)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sld_workflows.dynamics.settings import Ensemble, SpinScheme
from sld_workflows.engines.vasp import conventions as cv
from sld_workflows.jsonable import jsonable
from sld_workflows.units import EV_PER_A3_TO_KBAR, GPA_TO_EV_PER_A3, KBAR_TO_EV_PER_A3
from sld_workflows.vectors import unit_rows


def test_unit_rows_keeps_zero_rows_zero():
    v = np.array([[3.0, 0.0, 4.0], [0.0, 0.0, 0.0], [1e-100, 0.0, 0.0]])
    u = unit_rows(v)
    assert np.array_equal(u[0], [0.6, 0.0, 0.8])
    assert np.array_equal(u[1], [0.0, 0.0, 0.0])  # a non-magnetic site has no direction
    assert np.array_equal(u[2], [1.0, 0.0, 0.0])  # tiny but non-zero: still a direction
    assert u is not v and np.array_equal(v[1], [0, 0, 0])  # input untouched


def test_jsonable_policies():
    class WithDict:
        def as_dict(self):
            return {"a": np.float64(1.5)}

    value = {"x": np.arange(3), 1: (np.int64(2), np.bool_(True)), "e": Ensemble.NPT, "n": float("nan"),
             "o": WithDict()}
    kept = jsonable(value, objects="as_dict")
    assert kept["x"] == [0, 1, 2] and kept["1"] == [2, True] and kept["o"] == {"a": 1.5}
    assert type(kept["e"]) is str and kept["e"] == "npt"  # StrEnum members become plain strings
    assert math.isnan(kept["n"])
    assert jsonable(value, non_finite="null", objects="as_dict")["n"] is None
    with pytest.raises(ValueError, match="not JSON compliant"):
        jsonable(value, non_finite="error", objects="as_dict")
    with pytest.raises(TypeError, match="WithDict"):
        jsonable({"o": WithDict()}, objects="error")
    assert jsonable({"p": {1, 2}}, objects="as_dict_or_str") == {"p": "{1, 2}"}
    # the same bytes json itself writes for plain data (keys, nesting, numbers)
    plain = {"a": [1, 2.5, None, True], 3: {"b": "c"}, 2.5: -1}
    assert json.dumps(jsonable(plain)) == json.dumps(plain)


def test_enums_are_their_strings():
    assert json.dumps([Ensemble.SPIN_ONLY, SpinScheme.SIB_FIXED_FIELD]) == '["spin-only", "sib-fixed-field"]'
    assert Ensemble("nvt") is Ensemble.NVT and SpinScheme.SIB == "sib"


def test_m_constr_zero_rule():
    m = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 9.9e-6, 0.0], [-1e-5, 0.0, 0.0]])
    assert cv.constrained_mask(m).tolist() == [True, False, False, True]


@pytest.mark.parametrize(("mode", "c"), [(1, 2.0), (2, 2.0), (4, 1.0)])
def test_printed_field_round_trip(mode, c):
    """P = μB/(c|MW|) (stand-in) and B = (|MW|/μ)·c·P (parser) are inverse to round-off."""
    assert cv.field_factor(mode) == c
    rng = np.random.default_rng(1)
    b = rng.normal(size=(5, 3))
    mw, mu = rng.uniform(1.0, 2.5, 5), rng.uniform(2.0, 3.5, 5)
    p = np.array([cv.printed_field_ev_per_mub(b[i], mw[i], mu[i], c) for i in range(5)])
    back = cv.llg_fields_ev_per_mub(p, mw, mu, c)
    assert np.abs(back - b).max() <= 8 * np.finfo(float).eps * np.abs(b).max()


def test_unsupported_mode_is_an_error():
    from sld_workflows.errors import SLDError

    with pytest.raises(SLDError, match="I_CONSTRAINED_M=3"):
        cv.field_factor(3)


def test_energy_and_stress_conversions():
    assert cv.dft_energy_ev(cv.printed_e0_ev(-100.25, 0.125), 0.125) == -100.25
    assert cv.penalty_energy_ev(np.array([[3.0, 0.0, 4.0]]), 5.0) == 5.0
    # 1 eV/Å³ = 160.21766208 GPa = 1602.1766208 kBar, independently of the kBar constant
    assert KBAR_TO_EV_PER_A3 == pytest.approx(0.1 * GPA_TO_EV_PER_A3, rel=1e-15)
    sigma = np.diag([1e-3, -2e-3, 0.0])  # ASE sign: positive = tensile
    kbar = cv.ase_ev_per_a3_to_stress_kbar(sigma)
    assert kbar[0, 0] == pytest.approx(-1e-3 * EV_PER_A3_TO_KBAR) and kbar[1, 1] > 0
    assert np.allclose(cv.stress_kbar_to_ase_ev_per_a3(kbar), sigma, rtol=1e-15, atol=0)
