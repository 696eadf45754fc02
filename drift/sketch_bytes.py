"""DataSketches serializations from clients, checked in full before DataSketches reads them.

DataSketches' readers trust what the bytes declare. Seen with datasketches 5.2.0: a 45-byte frequent-items
sketch declaring a map of 2^30 slots makes `deserialize` allocate 2 GiB, and a KLL sketch whose level
boundaries were changed deserializes without complaint and then kills the process (SIGSEGV) when its ranks
are read. So the layouts are parsed here first, as apache/datasketches-cpp 5.x writes them
(kll/include/kll_sketch_impl.hpp `serialize`, fi/include/frequent_items_sketch_impl.hpp `serialize`), every
invariant the readers rely on is checked, and only then is DataSketches asked to read the bytes.
"""

from __future__ import annotations

import math
import struct

import datasketches
import numpy as np

KLL_FAMILY = 15
KLL_M = 8  # DataSketches' only minimum level width; a sketch with another was not built by it
KLL_MIN_K = 8
KLL_MAX_LEVELS = 61  # DataSketches refuses a depth past 60
_KLL_EMPTY, _KLL_LEVEL_ZERO_SORTED, _KLL_SINGLE_ITEM = 1, 2, 4

FREQUENT_FAMILY = 10
FREQUENT_MIN_LG_MAP = 3
# Profiles use a map of 2^10; 2^12 leaves room for other settings while bounding the map a sketch allocates.
FREQUENT_MAX_LG_MAP = 12
_FREQUENT_EMPTY = 5  # DataSketches sets two flag bits for an empty sketch


class SketchError(ValueError):
    """Bytes that are not a sketch DataSketches can safely read; the message says what is wrong."""


def kll(blob: bytes) -> datasketches.kll_doubles_sketch:
    """A KLL sketch of doubles read from a client's bytes, after checking its header, level boundaries, item
    count, weights, order and values; SketchError otherwise."""
    if len(blob) < 8:
        raise SketchError("a KLL sketch is at least 8 bytes")
    preamble, _version, family, flags, k, m = struct.unpack_from("<BBBBHB", blob, 0)
    if family != KLL_FAMILY or m != KLL_M or k < KLL_MIN_K or flags & ~7:
        raise SketchError("not a KLL sketch of DataSketches' layout (family, m, k or flags)")
    if flags & _KLL_EMPTY:
        if len(blob) != 8:
            raise SketchError("an empty KLL sketch has bytes after its header")
    elif flags & _KLL_SINGLE_ITEM:
        if len(blob) != 16 or not math.isfinite(struct.unpack_from("<d", blob, 8)[0]):
            raise SketchError("a KLL sketch of one value holds one finite value")
    else:
        _check_kll_levels(blob, preamble, k, flags)
    try:
        sketch = datasketches.kll_doubles_sketch.deserialize(blob)
    except Exception as error:  # whatever the C++ reader throws (runtime, range, index errors) is the bytes' fault
        raise SketchError(f"DataSketches cannot read the KLL sketch: {error}") from None
    # The layout checked above is the one DataSketches derived from k and the level count: it writes it back
    # byte for byte, or the capacity it computed is not the one the bytes assumed.
    if sketch.serialize() != blob:
        raise SketchError("the KLL sketch's size does not match its k and levels")
    return sketch


def _check_kll_levels(blob: bytes, preamble: int, k: int, flags: int) -> None:
    if preamble != 5 or len(blob) < 20:
        raise SketchError("a KLL sketch of several values has a 20-byte header")
    n, min_k, levels_count = struct.unpack_from("<QHB", blob, 8)
    if not KLL_MIN_K <= min_k <= k or not 1 <= levels_count <= KLL_MAX_LEVELS or n < 2:
        raise SketchError("the KLL sketch's min_k, level count or item count is out of range")
    items_at = 20 + 4 * levels_count + 16
    if len(blob) < items_at or (len(blob) - items_at) % 8:
        raise SketchError("the KLL sketch's bytes do not hold its levels, bounds and items")
    levels = np.frombuffer(blob, "<u4", levels_count, 20).astype(np.int64)
    minimum, maximum = struct.unpack_from("<dd", blob, 20 + 4 * levels_count)
    items = np.frombuffer(blob, "<f8", offset=items_at)
    # The top level ends where the items do; each boundary lies between the one below and that end.
    bounds = np.append(levels, levels[0] + items.size)
    if np.any(np.diff(bounds) < 0):
        raise SketchError("the KLL sketch's level boundaries are out of order")
    sizes = np.diff(bounds)
    if int(np.sum(sizes * (2 ** np.arange(levels_count, dtype=np.float64)))) != n:
        raise SketchError(f"the KLL sketch's items weigh other than the {n} values it declares")
    if not (math.isfinite(minimum) and math.isfinite(maximum) and minimum <= maximum):
        raise SketchError("the KLL sketch's minimum and maximum are not finite and ordered")
    if not np.all(np.isfinite(items)) or np.any(items < minimum) or np.any(items > maximum):
        raise SketchError("the KLL sketch holds values that are not finite or lie outside its minimum and maximum")
    first = 0 if flags & _KLL_LEVEL_ZERO_SORTED else 1
    for level in range(first, levels_count):
        start, end = bounds[level] - levels[0], bounds[level + 1] - levels[0]
        if np.any(np.diff(items[start:end]) < 0):
            raise SketchError(f"level {level} of the KLL sketch is not sorted")


def frequent(blob: bytes, max_item_bytes: int) -> datasketches.frequent_strings_sketch:
    """A frequent-strings sketch read from a client's bytes, after checking its map sizes, item count, weights and
    items (UTF-8, each at most max_item_bytes); SketchError otherwise."""
    if len(blob) < 8:
        raise SketchError("a frequent-items sketch is at least 8 bytes")
    _preamble, _version, family, lg_max, lg_current, flags = struct.unpack_from("<BBBBBB", blob, 0)
    if family != FREQUENT_FAMILY or flags & ~_FREQUENT_EMPTY:
        raise SketchError("not a frequent-items sketch of DataSketches' layout")
    if not FREQUENT_MIN_LG_MAP <= lg_current <= lg_max <= FREQUENT_MAX_LG_MAP:
        raise SketchError(f"a frequent-items sketch's map is at most 2^{FREQUENT_MAX_LG_MAP} slots")
    if flags & _FREQUENT_EMPTY:
        if len(blob) != 8:
            raise SketchError("an empty frequent-items sketch has bytes after its header")
    else:
        _check_frequent_items(blob, lg_current, max_item_bytes)
    try:
        return datasketches.frequent_strings_sketch.deserialize(blob)
    except Exception as error:  # as for KLL
        raise SketchError(f"DataSketches cannot read the frequent-items sketch: {error}") from None


def _check_frequent_items(blob: bytes, lg_current: int, max_item_bytes: int) -> None:
    if len(blob) < 32:
        raise SketchError("a frequent-items sketch with items has a 32-byte header")
    (count,) = struct.unpack_from("<I", blob, 8)
    total, offset = struct.unpack_from("<QQ", blob, 16)
    if not 1 <= count <= (3 << lg_current) // 4:  # DataSketches' map holds at most 3/4 of its slots
        raise SketchError("the frequent-items sketch holds more items than its map")
    if len(blob) < 32 + 8 * count:
        raise SketchError("the frequent-items sketch ends inside its weights")
    weights = np.frombuffer(blob, "<u8", count, 32)
    if np.any(weights == 0) or sum(int(weight) for weight in weights) + offset > total:
        raise SketchError("the frequent-items sketch's weights do not add up to its total")
    at = 32 + 8 * count
    for _ in range(count):
        if len(blob) < at + 4:
            raise SketchError("the frequent-items sketch ends inside its items")
        (length,) = struct.unpack_from("<I", blob, at)
        if length > max_item_bytes or len(blob) < at + 4 + length:
            raise SketchError(f"a frequent-items sketch's item is longer than {max_item_bytes} bytes or cut short")
        try:
            blob[at + 4:at + 4 + length].decode()
        except UnicodeDecodeError:
            raise SketchError("a frequent-items sketch's item is not UTF-8 text") from None
        at += 4 + length
    if at != len(blob):
        raise SketchError("the frequent-items sketch has bytes after its items")
