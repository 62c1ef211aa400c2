"""vasprun.xml and OUTCAR writers for ``sld-fake-vasp`` (the parts pymatgen ``Vasprun``/``Outcar``,
Custodian and our parsers read; element layout and number formats as real VASP 6 writes them:
``<v>`` rows of ``3F16.8``, ``<i>`` energies ``F16.8``)."""

from __future__ import annotations

from xml.sax.saxutils import escape

import numpy as np


def _v(row) -> str:
    return "<v>" + "".join(f"{float(x):16.8f}" for x in row) + " </v>"


def _incar_item(key: str, value) -> str:
    if isinstance(value, bool):
        return f'  <i type="logical" name="{key}"> {"T" if value else "F"}  </i>'
    if isinstance(value, int):
        return f'  <i type="int" name="{key}">{value:6d}</i>'
    if isinstance(value, float):
        return f'  <i name="{key}">{value:16.8f}</i>'
    if isinstance(value, list | tuple):
        flat = np.asarray(value, dtype=float).ravel()
        return f'  <v name="{key}">' + "".join(f"{x:16.8f}" for x in flat) + "</v>"
    return f'  <i type="string" name="{key}">{escape(str(value))}</i>'


def _structure(name: str | None, cell: np.ndarray, frac: np.ndarray, indent: str = " ") -> list[str]:
    vol = abs(float(np.linalg.det(cell)))
    rec = np.linalg.inv(cell).T
    head = f'{indent}<structure name="{name}" >' if name else f"{indent}<structure>"
    out = [head, f"{indent} <crystal>", f'{indent}  <varray name="basis" >']
    out += [f"{indent}   {_v(r)}" for r in cell]
    out += [f"{indent}  </varray>", f'{indent}  <i name="volume">{vol:16.8f} </i>',
            f'{indent}  <varray name="rec_basis" >']
    out += [f"{indent}   {_v(r)}" for r in rec]
    out += [f"{indent}  </varray>", f"{indent} </crystal>", f'{indent} <varray name="positions" >']
    out += [f"{indent}  {_v(r)}" for r in frac]
    out += [f"{indent} </varray>", f"{indent}</structure>"]
    return out


def vasprun_xml(
    incar: dict,
    species: list[str],
    cell: np.ndarray,
    frac: np.ndarray,
    kpoints_mesh: tuple[int, int, int],
    scf_energies: list[tuple[float, float, float]],
    forces: np.ndarray,
    stress_kbar: np.ndarray | None,
    nelm: int,
) -> str:
    """``scf_energies``: (e_fr_energy, e_wo_entrp, e_0_energy) per SCF step, the last one final."""
    types: list[str] = []
    for s in species:
        if s not in types:
            types.append(s)
    out = ['<?xml version="1.0" encoding="ISO-8859-1"?>', "<modeling>", " <generator>",
           '  <i name="program" type="string">vasp </i>',
           '  <i name="version" type="string">6.6.0  </i>',
           '  <i name="subversion" type="string">sld-fake-vasp emulation (not a VASP run) </i>',
           '  <i name="platform" type="string">LinuxIFC </i>', " </generator>", " <incar>"]
    for k, v in incar.items():
        if k in ("MAGMOM",):
            v = np.asarray(v, dtype=float).ravel().tolist()
        out.append(_incar_item(k, v))
    out += [" </incar>", " <kpoints>", '  <generation param="Gamma">',
            '   <v type="int" name="divisions">' + "".join(f"{k:8d}" for k in kpoints_mesh) + " </v>",
            "  </generation>", '  <varray name="kpointlist" >', "   " + _v([0, 0, 0]), "  </varray>",
            '  <varray name="weights" >', "   <v>       1.00000000 </v>", "  </varray>", " </kpoints>",
            " <parameters>", '  <separator name="electronic" >',
            f'   <i type="int" name="NELM">{nelm:6d}</i>',
            f'   <i type="int" name="ISPIN">{2:6d}</i>',
            '   <i type="logical" name="LNONCOLLINEAR"> T  </i>',
            '   <i type="logical" name="LSORBIT"> F  </i>',
            f'   <i type="int" name="I_CONSTRAINED_M">{int(incar.get("I_CONSTRAINED_M", 0)):6d}</i>',
            "  </separator>", '  <separator name="ionic" >',
            f'   <i type="int" name="NSW">{0:6d}</i>', f'   <i type="int" name="IBRION">{-1:6d}</i>',
            "  </separator>", " </parameters>", " <atominfo>", f"  <atoms>{len(species):8d} </atoms>",
            f"  <types>{len(types):8d} </types>", '  <array name="atoms" >',
            '   <dimension dim="1">ion</dimension>', '   <field type="string">element</field>',
            '   <field type="int">atomtype</field>', "   <set>"]
    out += [f"    <rc><c>{s:2s}</c><c>{types.index(s) + 1:4d}</c></rc>" for s in species]
    out += ["   </set>", "  </array>", '  <array name="atomtypes" >', '   <dimension dim="1">type</dimension>',
            '   <field type="int">atomspertype</field>', '   <field type="string">element</field>',
            "   <field>mass</field>", "   <field>valence</field>", '   <field type="string">pseudopotential</field>',
            "   <set>"]
    from pymatgen.core import Element

    for t in types:
        out.append(f"    <rc><c>{species.count(t):4d}</c><c>{t:2s}</c><c>{float(Element(t).atomic_mass):16.8f}</c>"
                   f"<c>{8.0:16.8f}</c><c>  PAW_PBE {t} (sld-fake-vasp placeholder)</c></rc>")
    out += ["   </set>", "  </array>", " </atominfo>"]
    out += _structure("initialpos", cell, frac)
    out.append(" <calculation>")
    for efr, ewo, e0 in scf_energies:
        out += ["  <scstep>", "   <energy>", f'    <i name="e_fr_energy">{efr:16.8f} </i>',
                f'    <i name="e_wo_entrp">{ewo:16.8f} </i>', f'    <i name="e_0_energy">{e0:16.8f} </i>',
                "   </energy>", "  </scstep>"]
    out += _structure(None, cell, frac, indent="  ")
    out += ['  <varray name="forces" >'] + [f"   {_v(f)}" for f in forces] + ["  </varray>"]
    if stress_kbar is not None:
        out += ['  <varray name="stress" >'] + [f"   {_v(s)}" for s in stress_kbar] + ["  </varray>"]
    efr, ewo, e0 = scf_energies[-1]
    out += ["  <energy>", f'   <i name="e_fr_energy">{efr:16.8f} </i>', f'   <i name="e_wo_entrp">{ewo:16.8f} </i>',
            f'   <i name="e_0_energy">{e0:16.8f} </i>', "  </energy>", " </calculation>"]
    out += _structure("finalpos", cell, frac)
    out.append("</modeling>")
    return "\n".join(out) + "\n"


def outcar_text(
    n_ions: int,
    nelm: int,
    positions: np.ndarray,
    forces: np.ndarray,
    stress_kbar: np.ndarray | None,
    m_int: np.ndarray,
    f_ev: float,
    e0_ev: float,
    n_scf: int,
    elapsed_s: float,
) -> str:
    """The OUTCAR blocks that pymatgen/ASE/Custodian look at: ion count, ncl magnetisation (x)/(y)/(z)
    tables (sphere moments, ``tot`` column), stress ``in kB`` line (XX YY ZZ XY YZ ZX), POSITION /
    TOTAL-FORCE table, TOTEN lines, timing footer (marks a finished run)."""
    out = [" vasp.6.6.0 (sld-fake-vasp emulation: not a VASP run)", "",
           "   k-points           NKPTS =      1   k-points in BZ     NKDIM =      1   "
           f"number of bands    NBANDS= {8 * n_ions:6d}",
           f"   number of dos      NEDOS =    301   number of ions     NIONS = {n_ions:6d}",
           f"   total plane-waves  NPLWV = {32768:6d}",
           f"   NELM   = {nelm:6d};    NELMIN=  2; NELMDL= -5     # of ELM steps",
           "   ISPIN  =      2    spin polarized calculation?",
           "   LNONCOLLINEAR =      T non collinear calculations",
           "   IBRION =     -1    ionic relax: 0-MD 1-quasi-New 2-CG",
           "   NSW    =      0    number of steps for IOM", ""]
    for it in range(1, n_scf + 1):
        out.append(f"{'-' * 41} Iteration      1({it:4d})  {'-' * 39}")
    out.append("")
    tot = m_int.sum(axis=0)
    out.append(f" number of electron {8.0 * n_ions:15.7f} magnetization {tot[0]:15.7f} {tot[1]:15.7f} {tot[2]:15.7f}")
    out.append("")
    if stress_kbar is not None:
        s = stress_kbar
        out.append("  in kB " + "".join(f"{v:12.5f}" for v in (s[0, 0], s[1, 1], s[2, 2], s[0, 1], s[1, 2], s[2, 0])))
        out.append("")
    out += [" POSITION                                       TOTAL-FORCE (eV/Angst)",
            " -----------------------------------------------------------------------------------"]
    out += [f" {p[0]:12.5f} {p[1]:12.5f} {p[2]:12.5f}   {f[0]:14.6f} {f[1]:14.6f} {f[2]:14.6f}"
            for p, f in zip(positions, forces, strict=True)]
    out += [" -----------------------------------------------------------------------------------",
            f"    total drift:                                {0.0:14.6f} {0.0:14.6f} {0.0:14.6f}", ""]
    out += ["  FREE ENERGIE OF THE ION-ELECTRON SYSTEM (eV)", "  ---------------------------------------------------",
            f"  free  energy   TOTEN  = {f_ev:20.8f} eV", "",
            f"  energy  without entropy= {e0_ev:17.8f}  energy(sigma->0) = {e0_ev:17.8f}", ""]
    for axis, k in (("x", 0), ("y", 1), ("z", 2)):
        out += [f" magnetization ({axis})", "", "# of ion       s       p       d       tot",
                "------------------------------------------"]
        out += [f"{i + 1:5d} {0.0:8.3f}{0.0:8.3f}{m[k]:8.3f}{m[k]:8.3f}" for i, m in enumerate(m_int)]
        out += ["--------------------------------------------------",
                f"tot  {0.0:8.3f}{0.0:8.3f}{tot[k]:8.3f}{tot[k]:8.3f}", ""]
    out += ["", " General timing and accounting informations for this job:",
            " ========================================================", "",
            f"                  Total CPU time used (sec):  {elapsed_s:12.3f}",
            f"                            Elapsed time (sec):  {elapsed_s:12.3f}", ""]
    return "\n".join(out) + "\n"
