"""The README's "first look in the UI", done by an operator in a real browser.

``dagster dev`` as ``make run`` starts it (the repository's dagster.yaml, local disk), Chromium
driven by Playwright: the asset graph, ``ohlcv_1m``'s partitions (registered by the sensor), a
backfill launched by clicking through the UI's dialog, then the materialization's metadata and
the asset checks as the UI shows them, compared with the Delta table itself.

Screenshots go to the test's temporary folder; with ``CB_UPDATE_SCREENSHOTS=1`` (or
``make screenshots``) they also replace ``docs/img/*.png`` (the README shows those) once the
test has passed, so the pictures always show what the assertions checked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from playwright.sync_api import expect

from cb_storage_dagster_tests.support.browser import chromium, dismiss_community_dialog
from cb_storage_dagster_tests.support.dagster_dev import REPO_ROOT, DagsterDev
from cb_storage_dagster_tests.support.servers import wait_until

T = TypeVar("T")

pytestmark = pytest.mark.slow

INSTRUMENTS = ["binance:BTC", "coinbase:ETH"]
DAY = "2024-01-02"
MINUTES_PER_DAY = 1440
DOCS_IMG = REPO_ROOT / "docs" / "img"

LATEST_BACKFILL = """
query { partitionBackfillsOrError(limit: 1) { __typename
  ... on PartitionBackfills { results { id status numPartitions } } } }"""

PARTITION_KEYS = """
query Keys($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { __typename
  ... on AssetNode { partitionKeysByDimension { name partitionKeys } } } }"""


class Screens:
    """Saves named screenshots; copies them to docs/img when ``CB_UPDATE_SCREENSHOTS=1``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.saved: list[Path] = []

    def shoot(self, page, name: str) -> None:
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path))
        self.saved.append(path)

    def publish(self) -> None:
        if os.environ.get("CB_UPDATE_SCREENSHOTS") == "1":
            DOCS_IMG.mkdir(parents=True, exist_ok=True)
            for path in self.saved:
                shutil.copy(path, DOCS_IMG / path.name)


@pytest.fixture(scope="module")
def dev(tmp_path_factory) -> Iterator[DagsterDev]:
    with DagsterDev(tmp_path_factory.mktemp("ui"), env={"CB_STORAGE_INSTRUMENTS": ",".join(INSTRUMENTS)}) as server:
        yield server


def registered_instruments(dev: DagsterDev) -> list[str]:
    node = dev.graphql(PARTITION_KEYS, {"key": {"path": ["ohlcv_1m"]}})["assetNodeOrError"]
    dims = {d["name"]: d["partitionKeys"] for d in node["partitionKeysByDimension"]}
    return sorted(dims.get("instrument", []))


def finished_backfill(dev: DagsterDev) -> dict | None:
    results = dev.graphql(LATEST_BACKFILL)["partitionBackfillsOrError"]["results"]
    if results and results[0]["status"] in ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"):
        return results[0]
    return None


def wait_for(condition: Callable[[], T], timeout: float, what: str) -> T:
    """:func:`support.servers.wait_until`, polling the webserver every 2 s."""
    return wait_until(condition, timeout, what, interval=2)


def test_first_look_in_the_ui(dev, tmp_path):
    screens = Screens(tmp_path)
    base = dev.url.removesuffix("/graphql")
    # README step 2: the sensor (on by default) registers the configured instruments.
    wait_for(lambda: registered_instruments(dev) == sorted(INSTRUMENTS), 180, "the sensor registers the instruments")

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(60_000)

        # Step 1: the asset graph shows both groups.
        page.goto(f"{base}/asset-groups", wait_until="networkidle", timeout=120_000)
        dismiss_community_dialog(page)
        for group in ("raw_market_data", "candles"):
            page.get_by_text(group, exact=True).first.wait_for()
        screens.shoot(page, "asset-graph")

        # ohlcv_1m's partitions: date x the instruments the sensor registered.
        page.goto(f"{base}/assets/ohlcv_1m?view=partitions", wait_until="networkidle")
        for instrument in INSTRUMENTS:
            page.get_by_text(instrument, exact=True).first.wait_for()
        screens.shoot(page, "ohlcv_1m-partitions")

        # Step 3: in the catalog, tick trades, ohlcv_1m and ohlcv_1d (not order_book: exchanges keep
        # no order-book history, so a backfill of it fails with that explanation) -> Materialize
        # selected -> one day x every instrument -> Launch backfill, by clicking.
        page.goto(f"{base}/assets", wait_until="networkidle")
        for name in ("trades", "ohlcv_1m", "ohlcv_1d"):
            box = page.get_by_test_id(f"checkbox-{name}")  # a styled input: click what wraps it
            box.locator("..").click()
            expect(box).to_be_checked()
        expect(page.get_by_test_id("checkbox-order_book")).not_to_be_checked()
        page.get_by_role("button", name="Materialize selected").click()
        dialog = page.get_by_role("dialog")
        dates = dialog.get_by_placeholder("ex: 2024-01-01", exact=False)
        dates.fill(DAY)
        dates.press("Enter")
        dialog.get_by_role("button", name="All").nth(1).click()  # the second "All" selects every instrument
        dialog.get_by_text(f"{len(INSTRUMENTS)} partitions", exact=True).wait_for()
        screens.shoot(page, "launch-backfill")
        dialog.get_by_role("button", name="Launch backfill").click()
        dialog.wait_for(state="hidden")

        # The daemon runs it; the test waits the way the UI's backfill page polls.
        backfill = wait_for(lambda: finished_backfill(dev), 600, "the UI's backfill finishes")
        assert backfill["status"] == "COMPLETED_SUCCESS", (backfill, dev.log_tail())
        assert backfill["numPartitions"] == len(INSTRUMENTS)
        page.goto(f"{base}/runs/b/{backfill['id']}", wait_until="networkidle")
        screens.shoot(page, "backfill")

        # Step 4: the materialization's metadata of one partition, as the UI shows it.
        page.goto(f"{base}/assets/ohlcv_1m?view=partitions", wait_until="networkidle")
        page.get_by_placeholder("Filter by date", exact=False).fill(DAY)
        page.get_by_text(DAY, exact=True).first.click()
        page.get_by_text(INSTRUMENTS[0], exact=True).first.click()
        page.get_by_text(f"{DAY}|{INSTRUMENTS[0]}", exact=True).first.wait_for()
        page.get_by_text("rows_per_partition", exact=True).wait_for()
        shown = page.locator("body").inner_text()
        # The picture shows the partition's own row count (the README's point of it).
        page.get_by_text("dagster/row_count", exact=True).first.scroll_into_view_if_needed()
        screens.shoot(page, "materialization-metadata")

        # ... and it is what the Delta table holds.
        table = DeltaTable(str(dev.data / "ohlcv_1m"))
        rows = pa.table(table.to_pyarrow_dataset().to_table(columns=["exchange", "coin"]))
        counts = rows.group_by(["exchange", "coin"]).aggregate([([], "count_all")]).to_pylist()
        assert f"file://{dev.data / 'ohlcv_1m'}" in shown
        assert re.search(rf"table_version\s+{table.version()}\s", shown), shown
        per_partition = json.loads(re.search(r"rows_per_partition\s+(\{.*?\})", shown, re.S).group(1))
        assert per_partition == {f"{c['exchange']}/{c['coin']}/{DAY}": c["count_all"] for c in counts}
        # The partition's own row count (not the run's total): a day of 1-minute candles is 1,440.
        exchange, coin = INSTRUMENTS[0].split(":")
        stored = next(c["count_all"] for c in counts if (c["exchange"], c["coin"]) == (exchange, coin))
        assert stored == MINUTES_PER_DAY
        row_count = re.search(r"dagster/row_count\s+([\d,]+)", shown)
        assert row_count is not None, shown
        assert int(row_count.group(1).replace(",", "")) == MINUTES_PER_DAY, row_count.group(0)

        # The freshness policy (yesterday's data by CB_STORAGE_FRESHNESS_DEADLINE, 06:00 UTC by
        # default) on the asset's overview, beside its checks.
        page.goto(f"{base}/assets/ohlcv_1m?view=overview", wait_until="networkidle")
        page.get_by_text("Freshness policy", exact=True).first.wait_for()
        expect(page.get_by_text("Deadline:", exact=False).first).to_be_visible()
        page.get_by_text("Freshness policy", exact=True).first.scroll_into_view_if_needed()
        screens.shoot(page, "freshness")

        # The asset checks ran with the materialization and passed.
        page.goto(f"{base}/assets/ohlcv_1m?view=checks", wait_until="networkidle")
        # Each check's detail shows its own metadata (a key only that check records) and result.
        for check, own_metadata in (("minute_coverage", "partitions_checked"), ("ohlcv_invariants", "rows_checked")):
            page.get_by_text(check, exact=True).first.click()
            expect(page.get_by_text(own_metadata, exact=True).first).to_be_visible()
            expect(page.get_by_text("Passed", exact=True).first).to_be_visible()
        screens.shoot(page, "asset-checks")

    screens.publish()
