"""``python -m cb_storage_dagster.cli``: the same as the ``cb-storage`` console script."""

from cb_storage_dagster.cli.main import run

run()
