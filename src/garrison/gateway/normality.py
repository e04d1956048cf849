"""The Shapiro-Wilk W statistic in numpy, for PRADA (:mod:`garrison.gateway.extraction`).

Royston's approximation of the coefficients (Royston 1992; algorithm AS R94, 1995), the one
``scipy.stats.shapiro`` uses, so that the gateway needs no scipy at run time. W agrees with scipy's to
about 1e-9 for 3 to 5,000 values; the p-value is not computed (PRADA thresholds W itself).
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist

import numpy as np

_C1 = (0.0, 0.221157, -0.147981, -2.071190, 4.434685, -2.706056)
_C2 = (0.0, 0.042981, -0.293762, -1.752461, 5.682633, -3.582633)


_NORMAL = NormalDist()


def _normal_quantiles(p: np.ndarray) -> np.ndarray:
    """The standard normal quantile of each ``p`` in (0, 1)."""
    if p.shape[0] <= 64:
        return np.array([_NORMAL.inv_cdf(float(v)) for v in p])
    # Acklam's rational approximation (relative error < 1.2e-9); small n use the stdlib's exact one.
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
         -3.066479806614716e01, 2.506628277459239e00)  # fmt: skip
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
         -1.328068155288572e01)  # fmt: skip
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
         4.374664141464968e00, 2.938163982698783e00)  # fmt: skip
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    low = p < 0.02425
    high = p > 1 - 0.02425
    out = np.empty_like(p)
    mid = ~(low | high)
    q = p[mid] - 0.5
    r = q * q
    num = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
    den = ((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1
    out[mid] = num / den
    for mask, sign, tail in ((low, 1.0, p[low]), (high, -1.0, 1 - p[high])):
        t = np.sqrt(-2 * np.log(tail))
        num = ((((c[0] * t + c[1]) * t + c[2]) * t + c[3]) * t + c[4]) * t + c[5]
        den = (((d[0] * t + d[1]) * t + d[2]) * t + d[3]) * t + 1
        out[mask] = sign * num / den
    return out


def _poly(coeffs: tuple[float, ...], x: float) -> float:
    return sum(c * x**i for i, c in enumerate(coeffs))


@lru_cache(maxsize=256)
def _sw_coefficients(n: int) -> np.ndarray:
    """The positive half of Royston's Shapiro-Wilk coefficients, largest first (length n // 2)."""
    half = n // 2
    if n == 3:
        return np.array([math.sqrt(0.5)])
    # m_n, m_{n-1}, ...: the expected normal order statistics, positive; by symmetry from the lower tail.
    m = -_normal_quantiles((np.arange(1, half + 1) - 0.375) / (n + 0.25))
    summ2 = 2.0 * float(np.dot(m, m))  # the middle value of an odd n is 0
    ssumm2 = math.sqrt(summ2)
    u = 1.0 / math.sqrt(n)
    a = np.empty(half)
    a[0] = m[0] / ssumm2 + _poly(_C1, u)
    if n > 5:
        a[1] = m[1] / ssumm2 + _poly(_C2, u)
        fac = math.sqrt((summ2 - 2 * m[0] ** 2 - 2 * m[1] ** 2) / (1 - 2 * a[0] ** 2 - 2 * a[1] ** 2))
        start = 2
    else:
        fac = math.sqrt((summ2 - 2 * m[0] ** 2) / (1 - 2 * a[0] ** 2))
        start = 1
    a[start:] = m[start:] / fac
    return a


def shapiro_wilk_w(sample: np.ndarray) -> float:
    """The Shapiro-Wilk W statistic of ``sample`` (3 to 5,000 values), as ``scipy.stats.shapiro`` gives it.

    A sample with no spread returns 1.0 (as scipy does).
    """
    x = np.sort(np.asarray(sample, dtype=np.float64).reshape(-1))
    n = x.shape[0]
    if not 3 <= n <= 5000:
        raise ValueError(f"Shapiro-Wilk needs 3 to 5000 values, got {n}")
    if x[-1] - x[0] <= 1e-19 * max(1.0, abs(x[-1])):
        return 1.0
    a = _sw_coefficients(n)
    half = a.shape[0]
    numerator = float(np.dot(a, x[::-1][:half] - x[:half])) ** 2
    centred = x - x.mean()
    return min(1.0, numerator / float(np.dot(centred, centred)))
