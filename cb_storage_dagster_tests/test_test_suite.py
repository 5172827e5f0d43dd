"""The test suite's own rules: marks select what they say, and project deprecations fail.

These run pytest in a subprocess (collection only) or check the warning filters pytest
applies to every test, so they fail if the rules in ``pyproject.toml`` or ``conftest.py``
are removed.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def collected_ids(*args: str) -> list[str]:
    """Test ids pytest selects for ``args`` (collection only, nothing runs)."""
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ},
    )
    assert completed.returncode in (0, 5), completed.stdout + completed.stderr  # 5: none selected
    return [line for line in completed.stdout.splitlines() if "::" in line]


class TestMarks:
    CONTRACT = "cb_storage_dagster_tests/test_backend_contract.py"

    def test_minus_m_azure_selects_exactly_the_azurite_cases(self):
        azure = collected_ids(self.CONTRACT, "-m", "azure")
        everything = collected_ids(self.CONTRACT)
        assert azure and all("[azure" in test_id or "azure]" in test_id for test_id in azure)
        assert set(azure) == {t for t in everything if "azure" in t.split("[", 1)[-1]}

    def test_minus_m_not_azure_selects_exactly_the_local_cases(self):
        local = collected_ids(self.CONTRACT, "-m", "not azure")
        assert local and not any("azure" in test_id for test_id in local)

    def test_a_test_using_the_azurite_fixture_is_marked_azure(self):
        selected = collected_ids("cb_storage_dagster_tests/test_config.py", "-m", "azure")
        assert selected == ["cb_storage_dagster_tests/test_config.py::test_azure_backend_from_the_environment"]


class TestDeprecations:
    def test_a_deprecation_warning_from_a_project_module_fails_the_test(self):
        with pytest.raises(DeprecationWarning, match="old API"):
            warnings.warn_explicit(
                "old API", DeprecationWarning, "jobs.py", 1, module="cb_storage_dagster.orchestration.jobs"
            )

    def test_a_third_party_deprecation_is_reported_not_raised(self):
        with pytest.warns(DeprecationWarning, match="old API"):
            warnings.warn_explicit("old API", DeprecationWarning, "x.py", 1, module="somelib.x")

    def test_the_project_calls_no_deprecated_dagster_api(self):
        import cb_storage_dagster.orchestration.jobs as jobs

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            importlib.reload(jobs)
        assert [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)] == []


class TestDoctests:
    def test_the_packages_doctests_are_collected_by_the_suite(self):
        doctests = collected_ids("cb_storage_dagster/storage/sql", "cb_storage_dagster/settings")
        assert "cb_storage_dagster/storage/sql/writes.py::cb_storage_dagster.storage.sql.writes.delta_predicate" in doctests
        assert "cb_storage_dagster/settings/__init__.py::cb_storage_dagster.settings" in doctests

    def test_the_definitions_module_is_left_out(self):
        # it builds the Definitions at import; a run over the package must not import it
        ids = collected_ids("cb_storage_dagster")
        assert any(i.startswith("cb_storage_dagster/storage/manager.py::") for i in ids)
        assert not any(i.startswith("cb_storage_dagster/definitions.py") for i in ids)
