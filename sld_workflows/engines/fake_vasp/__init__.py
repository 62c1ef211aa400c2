"""``sld-fake-vasp``: a stand-in for ``vasp_ncl`` writing VASP-format outputs from any MSONable engine
(see :mod:`sld_workflows.engines.fake_vasp.cli` and ``docs/vasp_engine.md``)."""
