"""The first comparison in a process with embedding and text columns: their classifiers' scikit-learn modules are
imported before the columns' threads start. Two threads importing scikit-learn for the first time at once failed
about half the time (ImportError: cannot import name 'clone' from partially initialized module 'sklearn.base'), so
each run is a fresh interpreter, several at once."""

from __future__ import annotations

import subprocess
import sys

FIRST_COMPARISON = """
import numpy as np, pandas as pd
from fleetscope.drift.comparison import compare
rng = np.random.default_rng(0)
reference = pd.DataFrame({"vec": list(rng.normal(size=(300, 8))), "txt": [f"hello world {i}" for i in range(300)]})
current = pd.DataFrame({"vec": list(rng.normal(size=(300, 8)) + 0.5), "txt": [f"other words {i}." for i in range(300)]})
print(sorted(compare(reference, current, embeddings=["vec"], text=["txt"], workers=4).columns))
"""


def test_the_first_comparison_in_a_process_imports_its_classifiers_once():
    runs = [subprocess.Popen([sys.executable, "-c", FIRST_COMPARISON], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True) for _ in range(6)]
    outputs = [(run.communicate(timeout=120)[0], run.returncode) for run in runs]
    assert all(code == 0 and "'vec'" in output for output, code in outputs), [o[-600:] for o, c in outputs if c]
