"""Would coordinated (hash-threshold) sampling of categories bound Jensen-Shannon past EXACT_CATEGORIES (10,000 when
this was measured; profiles now count up to 100,000 exactly) tightly enough? It did not: see docs/drift.md.

Issue 40, item 1: on columns of 10^4 rows and more, the stated bound must be at most 0.25x the default threshold
(jensenshannon: 0.1). Past EXACT_CATEGORIES categories a profile holds a frequent-items (Misra-Gries) sketch, whose
deterministic bounds leave a long tail unknown (1.7-4.2x the threshold at 10^6 rows). This prototype evaluates the
idea of keeping, beside that sketch, exact counts of the categories whose hash lies below a threshold tau = 2^-j
(the same categories on every replica and the reference; the level j the lowest at which a profile keeps at most
`budget` categories, so that merging takes the larger j and adds counts), and bounding the rest at 99% confidence.

The bound, per comparison (r = 2^-j, the larger level of the two sides):

- H, the categories certainly heavier than any a sketch does not track (lower bound past the sketch's offset, on
  either side): exact where sampled, else the sketch's box of shares (as today).
- T, every other category: each share is at most the sketch's offset, or its upper bound where the sketch tracks
  it, so each term f_v of the divergence lies in [0, c] (c: the largest f over the box of the largest of those
  bounds on each side, at a corner). S = sum over T of f_v is estimated by
  Horvitz-Thompson from the sampled categories of T (each kept independently with probability r, the hash taken
  as a random function of the text, independent of the data). Bernstein's inequality, for the upper side on the
  terms f_v (1 - I_v / r) <= c and for the lower side on f_v (I_v / r - 1) <= c (1 - r) / r, with the variance
  sum f_v^2 (1 - r) / r bounded from above by a third Bernstein bound on the sampled f_v^2 (terms <= c^2); each of
  the three at delta / (3 x LEVELS), a union bound over every level the data could have chosen: the stated range
  holds with probability at least 99% whatever level the budget picked.
- The distance is sqrt of the divergence: its range is the square roots of the divergence's ends.

Prints, per distribution and size, the widest stated half-width over the threshold, the coverage (share of seeded
data sets, drifted and not, whose true distance lay in the stated range) and the bytes of one replica's profile of
the column as fleetscope encodes it: today's, with the sampled counts beside the sketch, and with every category
counted exactly; and the worst |error| over the stated half-width.

    .venv/bin/python benchmarks/js_sampled_bound.py [--seeds 30] [--budgets 2500,5000,10000,20000,40000] \
        [--lg 10,12] [--oracle] [--json out.json]   # the table in docs/drift.md: about 10 minutes
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math

import datasketches
import numpy as np
from scipy import special

from fleetscope.drift.columns import ColumnKind
from fleetscope.drift.profiles import V3_EXACT_CATEGORIES as EXACT_CATEGORIES
from fleetscope.drift.profiles import ColumnProfile, Profile, encode

THRESHOLD = 0.1
DELTA = 0.01
LEVELS = 24  # tau = 2^-j for j < LEVELS: up to 2^23 x budget categories
CONFIDENCE_LOG = math.log(3 * LEVELS / DELTA)

CASES = {  # name: draw(rng, rows, shift) of integer codes, the categories "p<code>"; seeds take shifts 0, 0.05, 0.3
    "Zipf 1.3 (long tail)": lambda rng, n, s: rng.zipf(1.3 + s, n),
    "uniform, 50,000 categories": lambda rng, n, s: np.where(rng.random(n) < s, rng.integers(0, 5_000, n),
                                                             rng.integers(0, 50_000, n)),
    "5 heavy (90%), tail of 10^5": lambda rng, n, s: np.where(rng.random(n) < 0.9 - s, rng.integers(0, 5, n),
                                                              5 + rng.integers(0, 100_000, n)),
    # Drift a sample can miss: a share s of the current moved to 2,000 categories the reference never had, each far
    # below what the sketch tracks.
    "uniform 50,000, drift to 2,000 new": lambda rng, n, s: np.where(
        rng.random(n) < s, 50_000 + rng.integers(0, 2_000, n), rng.integers(0, 50_000, n)),
}


def category_hash(texts: list[str]) -> np.ndarray:
    """A fixed hash of each category's text to [0, 1): blake2b, personalized so no other hash shares it."""
    return np.array([int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8, person=b"fleetscope-cat").digest(),
                                    "little") for t in texts], dtype=np.float64) / 2.0 ** 64


def js_terms(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    m = (p + q) / 2.0
    return (special.rel_entr(p, m) + special.rel_entr(q, m)) / 2.0


def level(hashes: np.ndarray, budget: int) -> int:
    for j in range(LEVELS):
        if np.count_nonzero(hashes < 2.0 ** -j) <= budget:
            return j
    raise ValueError("more categories than the levels can sample")


def frequent(codes: np.ndarray, counts: np.ndarray, lg: int) -> datasketches.frequent_strings_sketch:
    sketch = datasketches.frequent_strings_sketch(lg)
    for code, count in zip(codes.tolist(), counts.tolist(), strict=True):
        sketch.update(f"p{code}", count)
    return sketch


def sketch_bounds(sketch) -> tuple[dict, dict, int]:
    rows = sketch.get_frequent_items(datasketches.frequent_items_error_type.NO_FALSE_NEGATIVES, 0)
    lower = {int(item[1:]): max(int(low), 0) for item, _, low, _ in rows}
    upper = {int(item[1:]): int(high) for item, _, _, high in rows}
    offset = max((high - low for _, _, low, high in rows), default=int(sketch.total_weight))
    return lower, upper, int(offset)


def bernstein_variance_upper(sampled_squares: float, c: float, r: float, log: float) -> float:
    """V = sum of f_v^2 over the population, at most: V - V_hat <= sqrt(2 c^2 V (1-r)/r log) + c^2 log / 3."""
    a = math.sqrt(2 * c * c * (1 - r) / r * log)
    b = sampled_squares / r + c * c * log / 3
    return ((a + math.sqrt(a * a + 4 * b)) / 2) ** 2


def stated_range(ref_counts: dict, cur_counts: dict, hashes: dict, r: float, ref_sketch, cur_sketch,
                 n_ref: int, n_cur: int, oracle: bool = False) -> tuple[float, float]:
    """The range of the JS divergence stated at 99%, from what the profiles hold (sampled exact counts, sketches)."""
    (p_low_map, p_high_map, p_off), (q_low_map, q_high_map, q_off) = (sketch_bounds(ref_sketch),
                                                                      sketch_bounds(cur_sketch))
    # H: certainly heavier than any category a sketch does not track (its lower bound past the offset) on either
    # side. Every other category, tracked or not, goes to T with its upper bounds, which make c.
    tracked = {v for v, low in p_low_map.items() if low > p_off} | {v for v, low in q_low_map.items() if low > q_off}
    light = (set(p_low_map) | set(q_low_map)) - tracked
    p_cap = max([p_off, *(p_high_map.get(v, p_off) for v in light)])
    q_cap = max([q_off, *(q_high_map.get(v, q_off) for v in light)])
    if oracle:  # not a bound: the largest true share in T, what a perfect certificate of the tail could give
        rest = (set(ref_counts) | set(cur_counts)) - tracked
        p_cap, q_cap = max(ref_counts.get(v, 0) for v in rest), max(cur_counts.get(v, 0) for v in rest)
    sampled = {v for v, h in hashes.items() if h < r}
    exact_h = [v for v in tracked if v in sampled]
    box_h = [v for v in tracked if v not in sampled]
    low_sum = high_sum = float(np.sum(js_terms(np.array([ref_counts.get(v, 0) / n_ref for v in exact_h]),
                                               np.array([cur_counts.get(v, 0) / n_cur for v in exact_h]))))
    if box_h:
        pl = np.array([p_low_map.get(v, 0) for v in box_h]) / n_ref
        ph = np.minimum(np.array([p_high_map.get(v, p_off) for v in box_h]) / n_ref, 1)
        ql = np.array([q_low_map.get(v, 0) for v in box_h]) / n_cur
        qh = np.minimum(np.array([q_high_map.get(v, q_off) for v in box_h]) / n_cur, 1)
        high_sum += float(np.sum(np.maximum.reduce([js_terms(a, b) for a in (pl, ph) for b in (ql, qh)])))
        p = np.where(ph < ql, ph, np.where(qh < pl, pl, np.maximum(pl, ql)))
        q = np.where(ph < ql, ql, np.where(qh < pl, qh, np.maximum(pl, ql)))
        low_sum += float(np.sum(js_terms(p, q)))
    # T: the rest, sampled at rate r.
    tail = [v for v in sampled if v not in tracked]
    f = js_terms(np.array([ref_counts.get(v, 0) / n_ref for v in tail]),
                 np.array([cur_counts.get(v, 0) / n_cur for v in tail]))
    if r >= 1:
        return low_sum + float(f.sum()), high_sum + float(f.sum())
    bp, bq = p_cap / n_ref, q_cap / n_cur
    c = float(np.max(js_terms(np.array([bp, 0.0, bp]), np.array([0.0, bq, bq]))))
    estimate = float(f.sum()) / r
    variance = bernstein_variance_upper(float(np.sum(f * f)), c, r, CONFIDENCE_LOG) * (1 - r) / r
    spread = math.sqrt(2 * variance * CONFIDENCE_LOG)
    tail_high = estimate + spread + c * CONFIDENCE_LOG / 3
    tail_low = max(float(f.sum()), estimate - spread - c * (1 - r) / r * CONFIDENCE_LOG / 3)
    return low_sum + tail_low, high_sum + tail_high


def replica_bytes(codes: np.ndarray, counts: np.ndarray, hashes: np.ndarray, budget: int,
                  lg: int) -> tuple[int, int, int]:
    """One replica's profile of the column, encoded as fleetscope writes it (fleetscope.drift.profiles.encode):
    today's (exact counts up to EXACT_CATEGORIES, the lg-10 sketch past them), with the sampled categories' counts
    beside an lg-`lg` sketch (the tau field aside), and with every category counted exactly."""
    texts = [f"p{code}" for code in codes.tolist()]
    exact = dict(zip(texts, counts.tolist(), strict=True))

    def encoded(listed: dict | None, sketch) -> int:
        column = ColumnProfile("string", ColumnKind.CATEGORICAL, rows=int(counts.sum()), counts=listed,
                               frequent=sketch)
        return len(encode(Profile({"c": column})))

    def sketch_of(size: int):
        sketch = datasketches.frequent_strings_sketch(size)
        for text, count in exact.items():
            sketch.update(json.dumps(text), count)
        return sketch

    today = encoded(exact, None) if codes.size <= EXACT_CATEGORIES else encoded(None, sketch_of(10))
    if codes.size <= budget:
        return today, encoded(exact, None), encoded(exact, None)
    kept = hashes < 2.0 ** -level(hashes, budget)
    sampled = {text: count for text, count, keep in zip(texts, counts.tolist(), kept.tolist(), strict=True) if keep}
    return today, encoded(sampled, sketch_of(lg)), encoded(exact, None)


def run(seeds: int, budgets: list[int], lgs: list[int], oracle: bool = False) -> dict:
    results: dict = {}
    header = f"{'distribution':<30}{'rows':>9}{'budget':>8}{'lg':>4}{'rate':>8}{'bound/thr':>11}{'coverage':>10}" \
             f"{'today B':>9}{'new B':>9}{'exact B':>9}{'err/bnd':>8}"
    print(header)
    for name, draw in CASES.items():
        for rows in (10_000, 60_000, 1_000_000):
            runs = seeds if rows < 1_000_000 else max(4, seeds // 5)
            data = []
            for seed in range(runs):
                rng = np.random.default_rng(seed)
                shift = (0.0, 0.05, 0.3)[seed % 3]
                ref, cur = draw(rng, rows, 0.0), draw(rng, rows, shift)
                data.append((ref, cur))
            for budget in budgets:
                for lg in lgs:
                    widest, covered, rates, total, sizes, worst = 0.0, 0, [], 0, [], 0.0
                    for ref, cur in data:
                        ref_codes, ref_n = np.unique(ref, return_counts=True)
                        cur_codes, cur_n = np.unique(cur, return_counts=True)
                        ref_counts = dict(zip(ref_codes.tolist(), ref_n.tolist(), strict=True))
                        cur_counts = dict(zip(cur_codes.tolist(), cur_n.tolist(), strict=True))
                        union = np.union1d(ref_codes, cur_codes)
                        union_hash = category_hash([f"p{c}" for c in union.tolist()])
                        hashes = dict(zip(union.tolist(), union_hash.tolist(), strict=True))
                        keys = np.array(union)
                        p = np.array([ref_counts.get(v, 0) for v in keys.tolist()]) / rows
                        q = np.array([cur_counts.get(v, 0) for v in keys.tolist()]) / rows
                        truth = math.sqrt(max(float(np.sum(js_terms(p, q))), 0.0))
                        if max(ref_codes.size, cur_codes.size) <= 10_000:
                            rates.append(1.0)
                            covered += 1
                            total += 1
                            continue
                        j = max(level(np.array([hashes[v] for v in ref_codes.tolist()]), budget),
                                level(np.array([hashes[v] for v in cur_codes.tolist()]), budget))
                        r = 2.0 ** -j
                        parts = np.array_split(cur, 4)
                        cur_sketch = None
                        for part in parts:
                            codes, counts = np.unique(part, return_counts=True)
                            one = frequent(codes, counts, lg)
                            if cur_sketch is None:
                                cur_sketch = one
                            else:
                                cur_sketch.merge(one)
                            if not sizes:
                                sizes.append(replica_bytes(codes, counts, np.array([hashes[v] for v in
                                                                                    codes.tolist()]), budget, lg))
                        low, high = stated_range(ref_counts, cur_counts, hashes, r, frequent(ref_codes, ref_n, lg),
                                                 cur_sketch, rows, rows, oracle)
                        low_d, high_d = math.sqrt(max(low, 0.0)), math.sqrt(min(max(high, low, 0.0), math.log(2)))
                        widest = max(widest, (high_d - low_d) / 2 / THRESHOLD)
                        covered += low_d - 1e-12 <= truth <= high_d + 1e-12
                        if high_d > low_d:
                            worst = max(worst, abs(truth - (low_d + high_d) / 2) / ((high_d - low_d) / 2))
                        total += 1
                        rates.append(r)
                    today, new, exact = sizes[0] if sizes else (0, 0, 0)
                    key = f"{name} @ {rows} budget {budget} lg {lg}"
                    results[key] = {"bound_over_threshold": widest, "coverage": covered / total,
                                    "rate": min(rates), "today_bytes": today, "new_bytes": new,
                                    "exact_bytes": exact, "runs": total, "worst_error_over_bound": worst}
                    print(f"{name:<30}{rows:>9}{budget:>8}{lg:>4}{min(rates):>8.4f}{widest:>11.3f}"
                          f"{covered / total:>10.1%}{today:>9}{new:>9}{exact:>9}{worst:>8.3f}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budgets", default="2500,5000,10000,20000")
    parser.add_argument("--lg", default="10,12")
    parser.add_argument("--oracle", action="store_true", help="c from the true largest tail share (not a bound: "
                        "what a perfect certificate of the tail would give)")
    parser.add_argument("--json")
    args = parser.parse_args()
    results = run(args.seeds, [int(b) for b in args.budgets.split(",")], [int(g) for g in args.lg.split(",")],
                  args.oracle)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
