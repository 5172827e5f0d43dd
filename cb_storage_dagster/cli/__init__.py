"""``cb-storage``: the operator's command line over the storage API, with no Dagster import.

One module per command (:mod:`.tables`, :mod:`.coverage`, :mod:`.read`, :mod:`.maintain`),
the shared options and the storage they open in :mod:`.options`, the parser and the exit
codes in :mod:`.main`. Run it as the console script ``cb-storage`` (installed by pip) or as
``python -m cb_storage_dagster.cli``.

Exit codes: 0 done (``coverage``: no gaps), 1 ``coverage`` found partial or missing
instrument-days, 2 bad input (usage, unknown table, naive time, missing root, bad
configuration), 3 the storage failed (outage, refused credential, unreadable table).
"""

from cb_storage_dagster.cli.main import main, run

__all__ = ["main", "run"]
