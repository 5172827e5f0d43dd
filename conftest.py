"""Root of the test run: which package modules the doctest collection leaves out, and why.

``pyproject.toml`` runs the package's doctests (``--doctest-modules`` over ``testpaths``),
which imports every module of ``cb_storage_dagster``; a module whose import has effects
beyond defining names, or needs an optional extra, is listed here with the reason.
"""

collect_ignore = [
    # builds the Dagster Definitions at import (reads the environment, loads the profile)
    "cb_storage_dagster/definitions.py",
    # helpers of the tests, not the package: their examples start servers and browsers
    "cb_storage_dagster_tests/support",
]
