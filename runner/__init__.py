"""pacsmig: a declarative, config-driven PACS data migration runner.

Importing it sets OPENBLAS_NUM_THREADS to 1 unless it is set already: pydicom imports numpy,
whose OpenBLAS otherwise starts a thread per core at import that spins for a while, about
0.14 CPU seconds of every command on two cores, for matrix arithmetic the runner never does.
It must come before numpy's import, hence here, the first module of the package to load.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
