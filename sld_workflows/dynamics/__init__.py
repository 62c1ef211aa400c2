"""Integrators: pure numpy, no I/O, no engine or database imports.

- :mod:`.spin` — stochastic Landau-Lifshitz-Gilbert, SIB scheme (Mentink et al. 2010);
- :mod:`.lattice` — velocity Verlet pieces, Langevin (BAOAB "O" step), stochastic cell rescaling;
- :mod:`.schedules` — temperature schedules;
- :mod:`.rng` — counter-based random streams keyed by (seed, step, purpose);
- :mod:`.step` — the one coupled step used by every driver.
"""
