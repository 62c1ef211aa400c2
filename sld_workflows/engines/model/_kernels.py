"""Optional numba kernels for the neighbour-list terms (Morse pair, exchange).

They compute exactly the same expressions as the numpy code in :mod:`.terms` (one fused loop over
the half list instead of a dozen array passes); :data:`HAVE_NUMBA` is False when numba is not
installed, and the numpy path is then used. Results agree with the numpy path to round-off; each
kernel is a sequential loop, so it is deterministic.
"""

from __future__ import annotations

import math

import numpy as np

try:  # pragma: no cover - depends on the environment
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    numba = None
    HAVE_NUMBA = False

#: integer codes of the exchange forms inside the kernel
FORM_CODES = {"ma_dudarev": 0, "bethe_slater": 1, "linear": 2, "exponential": 3, "constant": 4}


def _jit(fn):
    if not HAVE_NUMBA:
        return None
    return numba.njit(cache=True, fastmath=False, nogil=True)(fn)


def _pair_matches(codes, i, j, ca, cb):
    """Species of sites i and j are the pair (a, b) in either order."""
    ci = codes[i]
    cj = codes[j]
    return (ci == ca and cj == cb) or (ci == cb and cj == ca)


def _separation(pos, shift_cart, k, i, j):
    """d = r_j − r_i + periodic shift of pair k, and |d|²."""
    dx = pos[j, 0] - pos[i, 0] + shift_cart[k, 0]
    dy = pos[j, 1] - pos[i, 1] + shift_cart[k, 1]
    dz = pos[j, 2] - pos[i, 2] + shift_cart[k, 2]
    return dx, dy, dz, dx * dx + dy * dy + dz * dz


def _add_pair_gradient(grad, virial, i, j, g, dx, dy, dz):
    """Add a radial pair term's ∂E/∂d = g·d (d = r_j − r_i) to sites j (+) and i (−) and to the virial."""
    gx, gy, gz = g * dx, g * dy, g * dz
    grad[j, 0] += gx
    grad[j, 1] += gy
    grad[j, 2] += gz
    grad[i, 0] -= gx
    grad[i, 1] -= gy
    grad[i, 2] -= gz
    virial[0, 0] += gx * dx
    virial[0, 1] += gx * dy
    virial[0, 2] += gx * dz
    virial[1, 0] += gy * dx
    virial[1, 1] += gy * dy
    virial[1, 2] += gy * dz
    virial[2, 0] += gz * dx
    virial[2, 1] += gz * dy
    virial[2, 2] += gz * dz


def _morse_kernel(pos, shift_cart, ii, jj, codes, ca, cb, any_species, rc, d0, alpha, r0, scale, grad, virial):
    rc2 = rc * rc
    ec = math.exp(-alpha * (rc - r0))
    vc = d0 * (ec * ec - 2.0 * ec)
    dvc = -2.0 * alpha * d0 * (ec * ec - ec)
    energy = 0.0
    for k in range(ii.shape[0]):
        i = ii[k]
        j = jj[k]
        if not any_species and not _pair_matches(codes, i, j, ca, cb):
            continue
        dx, dy, dz, r2 = _separation(pos, shift_cart, k, i, j)
        if r2 >= rc2:
            continue
        r = math.sqrt(r2)
        e = math.exp(-alpha * (r - r0))
        v = d0 * (e * e - 2.0 * e)
        dv = -2.0 * alpha * d0 * (e * e - e)
        energy += v - vc - (r - rc) * dvc
        g = scale * (dv - dvc) / r
        _add_pair_gradient(grad, virial, i, j, g, dx, dy, dz)
    return scale * energy


def _taper(r, r_on, r_cut):
    if r_on >= r_cut or r <= r_on:
        return 1.0, 0.0
    if r >= r_cut:
        return 0.0, 0.0
    x = (r - r_on) / (r_cut - r_on)
    return 0.5 * (1.0 + math.cos(math.pi * x)), -0.5 * math.pi * math.sin(math.pi * x) / (r_cut - r_on)


def _exchange_kernel(
    pos, shift_cart, ii, jj, codes, ca, cb, spins, form, p, rc, r_on, rmin, rmin_on, use_inner,
    offset, lam, nx, ny, nz, scale, grad_r, grad_s, virial,
):
    rc2 = rc * rc
    energy = 0.0
    for k in range(ii.shape[0]):
        i = ii[k]
        j = jj[k]
        if not _pair_matches(codes, i, j, ca, cb):
            continue
        dx, dy, dz, r2 = _separation(pos, shift_cart, k, i, j)
        if r2 >= rc2:
            continue
        r = math.sqrt(r2)
        # radial function
        if form == 0:
            x = 1.0 - r / rc
            if x < 0.0:
                x = 0.0
            jr = p[0] * x * x * x
            djr = -3.0 * p[0] * x * x / rc
        elif form == 1:
            q = (r / p[2]) ** 2
            e = math.exp(-q)
            jr = 4.0 * p[0] * q * (1.0 - p[1] * q) * e
            djr = (8.0 * p[0] * r / (p[2] * p[2])) * e * (1.0 - q - p[1] * q * (2.0 - q))
        elif form == 2:
            jr = p[0] + p[2] * (r - p[1])
            djr = p[2]
        elif form == 3:
            jr = p[0] * math.exp(-p[2] * (r - p[1]))
            djr = -p[2] * jr
        else:
            jr = p[0]
            djr = 0.0
        t, dt = _taper(r, r_on, rc)
        if use_inner:
            tin, dtin = _taper(r, rmin, rmin_on)
            dt = dt * (1.0 - tin) - t * dtin
            t = t * (1.0 - tin)
        jt = scale * jr * t
        djt = scale * (djr * t + jr * dt)
        if jt == 0.0 and djt == 0.0:
            continue
        six, siy, siz = spins[i, 0], spins[i, 1], spins[i, 2]
        sjx, sjy, sjz = spins[j, 0], spins[j, 1], spins[j, 2]
        corr = six * sjx + siy * sjy + siz * sjz - offset
        gix, giy, giz = sjx, sjy, sjz
        gjx, gjy, gjz = six, siy, siz
        if lam != 0.0:
            sni = six * nx + siy * ny + siz * nz
            snj = sjx * nx + sjy * ny + sjz * nz
            corr += lam * sni * snj
            gix += lam * snj * nx
            giy += lam * snj * ny
            giz += lam * snj * nz
            gjx += lam * sni * nx
            gjy += lam * sni * ny
            gjz += lam * sni * nz
        energy -= jt * corr
        grad_s[i, 0] -= jt * gix
        grad_s[i, 1] -= jt * giy
        grad_s[i, 2] -= jt * giz
        grad_s[j, 0] -= jt * gjx
        grad_s[j, 1] -= jt * gjy
        grad_s[j, 2] -= jt * gjz
        g = -djt * corr / r
        _add_pair_gradient(grad_r, virial, i, j, g, dx, dy, dz)
    return energy


if HAVE_NUMBA:
    _taper = numba.njit(cache=True)(_taper)
    _add_pair_gradient = numba.njit(cache=True)(_add_pair_gradient)
    _pair_matches = numba.njit(cache=True)(_pair_matches)
    _separation = numba.njit(cache=True)(_separation)
morse_kernel = _jit(_morse_kernel)
exchange_kernel = _jit(_exchange_kernel)


def species_codes(species: tuple[str, ...], cache: dict) -> tuple[np.ndarray, dict[str, int]]:
    key = ("species", species)
    codes = cache.get(key)
    if codes is None:
        names = sorted(set(species))
        lookup = {s: k for k, s in enumerate(names)}
        codes = (np.array([lookup[s] for s in species], dtype=np.int64), lookup)
        cache[key] = codes
    return codes
