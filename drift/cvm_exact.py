"""The exact p-value of the two-sample Cramér-von Mises test, as Evidently 0.7.23 computes it.

Evidently uses its own copy of an older SciPy (evidently/legacy/calculations/stattests/
cramer_von_mises_stattest.py, _pval_cvm_2samp_exact; Apache License 2.0, after SciPy's BSD code).
It counts the binomial coefficient as a float, so np.min_scalar_type() gives the counting arrays a
float type (float32 for a few dozen values) where SciPy (1.14 and later at least: comb) counts in integers:
the p-values differ by about 1e-8. The statistic and the asymptotic p-value (past 20 values a side)
are SciPy's in both.

The algorithm: Xiao, Gordon and Yakovlev, "A C++ Program for the Cramér-Von Mises Two-Sample
Test", J. Stat. Soft. 17(8), 2006.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata

# Past this many values on either side, Evidently (and SciPy) take the asymptotic p-value.
EXACT_LIMIT = 20


def statistic_u(x: np.ndarray, y: np.ndarray) -> float:
    """U, from the ranks of two sorted samples in the pooled sample (ties get their average rank)."""
    ranks = rankdata(np.concatenate([x, y]), method="average")
    u = x.size * np.sum((ranks[:x.size] - np.arange(1, x.size + 1)) ** 2)
    u += y.size * np.sum((ranks[x.size:] - np.arange(1, y.size + 1)) ** 2)
    return float(u)


def exact_pvalue(u: float, m: int, n: int) -> float:
    lcm = np.lcm(m, n)
    a, b = lcm // m, lcm // n
    mn = m * n
    zeta = lcm ** 2 * (m + n) * (6 * u - mn * (4 * mn - 1)) // (6 * mn ** 2)
    combinations = math.factorial(m + n) / (math.factorial(m) * math.factorial(n))
    dtype = np.min_scalar_type(max(lcm ** 2 * (m + n), combinations))
    # gs[v]: the attainable values of the partial statistic (row 0) and how many paths reach each (row 1).
    gs = [np.array([[0], [1]], dtype=dtype)] + [np.empty((2, 0), dtype=dtype) for _ in range(m)]
    for u_step in range(n + 1):
        next_gs = []
        tmp = np.empty((2, 0), dtype=dtype)
        for v, g in enumerate(gs):
            common, in_tmp, in_g = np.intersect1d(tmp[0], g[0], return_indices=True)
            tmp = np.concatenate([np.stack([common, tmp[1, in_tmp] + g[1, in_g]]), np.delete(tmp, in_tmp, 1),
                                  np.delete(g, in_g, 1)], 1)
            tmp[0] += (a * v - b * u_step) ** 2
            next_gs.append(tmp)
        gs = next_gs
    value, frequency = gs[m]
    return float(np.sum(frequency[value >= zeta]) / combinations)
