"""sld_workflows: ab initio spin-lattice dynamics as resumable workflows.

Layers (bottom up, each imports only those below it):
``units``/``state`` -> ``dynamics`` -> ``engines`` -> ``store`` -> ``workflows`` ->
``datasets``/``analysis`` -> ``cli``/``dashboard``.
"""

__version__ = "0.1.0"
