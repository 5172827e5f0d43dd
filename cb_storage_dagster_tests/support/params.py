"""Parametrizations shared by test modules."""

from __future__ import annotations

import pytest

from cb_storage_dagster.storage.layout import LAYOUTS

both_layouts = pytest.mark.parametrize("layout", LAYOUTS)
"""Every behaviour marked with it holds on both Delta layouts (exchange/coin/month and exchange/month)."""
