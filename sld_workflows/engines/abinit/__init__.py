"""ABINIT engine: one noncollinear PAW SCF with the Ma–Dudarev direction penalty (``magconon 1``) per
state, on the file-engine protocol. See ``docs/abinit_engine.md``.

``AbinitSettings`` (settings.py) validates the run-spec section, ``inputs.py`` writes the ``.abi``,
``parsers.py`` reads the ``.abo`` and the log, ``engine.py`` holds :class:`AbinitEngine`.
"""

from sld_workflows.engines.abinit.engine import AbinitEngine, AbinitRunError
from sld_workflows.engines.abinit.settings import AbinitSettings

__all__ = ["AbinitEngine", "AbinitRunError", "AbinitSettings"]
