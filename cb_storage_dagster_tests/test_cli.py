"""``cb-storage``, run as a real subprocess (``python -m cb_storage_dagster.cli``, what the
console script calls) on real Delta and Parquet tables: each command, its output and exit
code, and bad input (unknown table, naive time, missing root, ...) -> a clear message, exit 2,
stored data unchanged."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pandas as pd
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from cb_storage_dagster import StorageConfig
from cb_storage_dagster.cli.heatmap import COLOURS

UTC = dt.timezone.utc
UNIVERSE = "binance:BTC,binance:ETH,coinbase:BTC"


def candles(day: str, minutes: int) -> pd.DataFrame:
    return pd.DataFrame({
        "timestamp": pd.date_range(day, periods=minutes, freq="1min", tz="UTC"),
        "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 1.0,
    })


def seed(root: Path) -> None:
    """binance:BTC complete on both days, binance:ETH complete then partial (700 minutes),
    coinbase:BTC missing on the 1st; a Parquet table of daily candles beside it."""
    manager = StorageConfig(backend_type="local", local_root_path=root).build_manager()
    for day in ("2024-01-01", "2024-01-02"):
        manager.save_entry({"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}, candles(day, 1440), table="ohlcv_1m")
    manager.save_entry({"data_type": "ohlcv", "exchange": "binance", "coin": "ETH"}, candles("2024-01-01", 1440), table="ohlcv_1m")
    manager.save_entry({"data_type": "ohlcv", "exchange": "binance", "coin": "ETH"}, candles("2024-01-02", 700), table="ohlcv_1m")
    manager.save_entry({"data_type": "ohlcv", "exchange": "coinbase", "coin": "BTC"}, candles("2024-01-02", 1440), table="ohlcv_1m")
    manager.save_entry({"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}, candles("2024-01-01", 1),
                       format_hint="parquet", table="daily_parquet")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli-root")
    seed(folder)
    return folder


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CB_STORAGE_")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "cb_storage_dagster.cli", *args],
        capture_output=True, text=True, env=environ, cwd=cwd, timeout=120,
    )


def versions(root: Path) -> int:
    return DeltaTable(str(root / "ohlcv_1m")).version()


class TestTables:
    def test_lists_every_table_with_version_files_and_bytes(self, root):
        done = cli("tables", "--root", str(root), "--json")
        assert done.returncode == 0, done.stderr
        rows = {r["table"]: r for r in map(json.loads, done.stdout.splitlines())}
        delta = DeltaTable(str(root / "ohlcv_1m"))
        files = delta.get_add_actions(flatten=True)
        assert rows["ohlcv_1m"]["format"] == "delta"
        assert rows["ohlcv_1m"]["version"] == delta.version()
        assert rows["ohlcv_1m"]["files"] == len(files)
        assert rows["ohlcv_1m"]["bytes"] == sum(files.column("size_bytes").to_pylist())
        assert rows["ohlcv_1m"]["last_maintenance"] is None
        assert rows["daily_parquet"]["format"] == "parquet"
        assert rows["daily_parquet"]["files"] == 1

    def test_prints_a_text_table(self, root):
        done = cli("tables", "--root", str(root))
        assert done.returncode == 0, done.stderr
        header, *lines = done.stdout.splitlines()
        assert header.split()[:4] == ["table", "format", "version", "files"]
        assert any(line.startswith("ohlcv_1m") and "never" in line for line in lines)


class TestCoverage:
    def test_names_partial_and_missing_instruments_and_exits_1(self, root):
        done = cli("coverage", "--root", str(root), "--start", "2024-01-01", "--end", "2024-01-02",
                   "--instruments", UNIVERSE, "--grid")
        assert done.returncode == 1, done.stderr
        lines = done.stdout.splitlines()
        assert lines[1].split() == ["binance", "2024-01-01", "2", "0", "0"]
        assert lines[2].split()[:5] == ["binance", "2024-01-02", "1", "1", "0"]
        assert "ETH (partial 700/1440)" in lines[2]
        assert "BTC (missing)" in lines[3] and lines[3].startswith("coinbase  2024-01-01")
        assert "binance:ETH   #+" in done.stdout and "coinbase:BTC  .#" in done.stdout
        assert lines[-1] == (
            "ohlcv_1m: 4 complete, 1 partial, 1 missing instrument-days (a complete day has 1440 intervals)"
        )

    def test_exits_0_when_every_expected_instrument_day_is_complete(self, root):
        # the universe from the environment, as the Dagster definitions read it
        done = cli("coverage", "--root", str(root), "--start", "2024-01-01", "--end", "2024-01-02",
                   env={"CB_STORAGE_INSTRUMENTS": "binance:BTC"})
        assert done.returncode == 0, (done.stdout, done.stderr)
        assert "2 complete, 0 partial, 0 missing" in done.stdout

    def test_writes_a_png_heatmap(self, root, tmp_path):
        png = tmp_path / "coverage.png"
        done = cli("coverage", "--root", str(root), "--start", "2024-01-01", "--end", "2024-01-02",
                   "--instruments", UNIVERSE, "--png", str(png))
        assert done.returncode == 1, done.stderr
        width, height, pixels = read_png(png)
        assert (width, height) == (2 * 13 + 1, 3 * 13 + 1)  # 2 days x 3 instruments, 12 px cells + grid

        def cell(row: int, column: int) -> tuple[int, int, int]:
            y, x = 1 + row * 13 + 6, 1 + column * 13 + 6
            return tuple(pixels[y][3 * x:3 * x + 3])

        assert [cell(0, 0), cell(0, 1)] == [COLOURS["complete"]] * 2  # binance:BTC
        assert cell(1, 1) == COLOURS["partial"]  # binance:ETH on the 2nd
        assert cell(2, 0) == COLOURS["missing"]  # coinbase:BTC on the 1st


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of an 8-bit RGB PNG with unfiltered scanlines (what we write)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, {}
    while position < len(data):
        (length,) = struct.unpack(">I", data[position:position + 4])
        kind = data[position + 4:position + 8]
        body = data[position + 8:position + 8 + length]
        assert struct.unpack(">I", data[position + 8 + length:position + 12 + length])[0] == zlib.crc32(kind + body)
        chunks[kind] = chunks.get(kind, b"") + body
        position += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 2)
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = 1 + 3 * width
    rows = [raw[i * stride + 1:(i + 1) * stride] for i in range(height)]
    assert all(raw[i * stride] == 0 for i in range(height))
    return width, height, rows


class TestRead:
    def test_exports_exactly_the_range_to_parquet(self, root, tmp_path):
        out = tmp_path / "range.parquet"
        done = cli("read", "--root", str(root), "--table", "ohlcv_1m", "--instruments", "binance:BTC,binance:ETH",
                   "--start", "2024-01-01T12:00Z", "--end", "2024-01-02T06:00+00:00", "--out", str(out))
        assert done.returncode == 0, done.stderr
        exported = pq.read_table(out).to_pandas()
        manager = StorageConfig(backend_type="local", local_root_path=root).build_manager()
        start, end = dt.datetime(2024, 1, 1, 12, tzinfo=UTC), dt.datetime(2024, 1, 2, 6, tzinfo=UTC)
        expected = pd.concat([
            manager.get_range({"data_type": "ohlcv", "exchange": "binance", "coin": coin}, start, end, table="ohlcv_1m")
            for coin in ("BTC", "ETH")
        ], ignore_index=True)
        assert len(exported) == len(expected) == 2 * 720 + 360 + 360
        pd.testing.assert_frame_equal(exported, expected)
        assert f"wrote {len(expected)} rows of ohlcv_1m" in done.stdout

    def test_exports_csv_with_chosen_columns(self, root, tmp_path):
        out = tmp_path / "btc.csv"
        done = cli("read", "--root", str(root), "--instruments", "binance:BTC", "--columns", "close",
                   "--start", "2024-01-02T00:00Z", "--end", "2024-01-03T00:00Z", "--out", str(out))
        assert done.returncode == 0, done.stderr
        table = pcsv.read_csv(out)
        assert table.column_names == ["exchange", "coin", "timestamp", "close"]
        assert table.num_rows == 1440

    def test_refuses_to_overwrite_an_existing_file(self, root, tmp_path):
        out = tmp_path / "kept.csv"
        out.write_text("mine")
        done = cli("read", "--root", str(root), "--instruments", "binance:BTC",
                   "--start", "2024-01-02T00:00Z", "--end", "2024-01-03T00:00Z", "--out", str(out))
        assert done.returncode == 2
        assert "exists: pass --force" in done.stderr
        assert out.read_text() == "mine"


def test_maintain_compacts_checkpoints_and_vacuums_with_progress(root, tmp_path):
    copy = tmp_path / "root"
    shutil.copytree(root, copy)
    before = DeltaTable(str(copy / "ohlcv_1m")).get_add_actions(flatten=True).num_rows
    done = cli("maintain", "--root", str(copy), "--table", "ohlcv_1m")
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "[######--------------] 1/3 ohlcv_1m: compact",
        "[#############-------] 2/3 ohlcv_1m: checkpoint",
        "[####################] 3/3 ohlcv_1m: vacuum",
    ]
    after = DeltaTable(str(copy / "ohlcv_1m")).get_add_actions(flatten=True).num_rows
    assert after < before  # two months' partitions ... one file per partition
    row = done.stdout.splitlines()[1].split()
    assert row[:4] == ["ohlcv_1m", "2", str(before), str(after)]
    listed = json.loads(cli("tables", "--root", str(copy), "--table", "ohlcv_1m", "--json").stdout)
    assert listed["last_maintenance"] is not None


class TestBadInput:
    """A clear message on stderr, exit 2, nothing changed."""

    @pytest.mark.parametrize("command", [
        ["coverage", "--end", "2024-01-02", "--instruments", "binance:BTC"],
        ["read", "--instruments", "binance:BTC", "--start", "2024-01-01T00:00Z", "--end", "2024-01-02T00:00Z",
         "--out", "x.parquet"],
        ["maintain"],
        ["tables"],
    ])
    def test_an_unknown_table(self, root, tmp_path, command):
        version = versions(root)
        done = cli(*command, "--root", str(root), "--table", "ohlcv_5x", cwd=tmp_path)
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert "No table 'ohlcv_5x'" in done.stderr and "ohlcv_1m" in done.stderr  # names what exists
        assert versions(root) == version
        assert not (tmp_path / "x.parquet").exists()

    def test_a_naive_time(self, root, tmp_path):
        done = cli("read", "--root", str(root), "--instruments", "binance:BTC", "--start", "2024-01-01T00:00",
                   "--end", "2024-01-02T00:00Z", "--out", str(tmp_path / "x.parquet"))
        assert done.returncode == 2
        assert "--start '2024-01-01T00:00' has no time zone" in done.stderr
        assert "2024-01-01T00:00Z" in done.stderr  # how to fix it

    def test_a_missing_root(self, tmp_path):
        done = cli("tables", "--root", str(tmp_path / "nowhere"))
        assert done.returncode == 2
        assert "is not an existing folder" in done.stderr
        assert not (tmp_path / "nowhere").exists()  # never created by a look

    def test_no_root_configured(self):
        done = cli("coverage", "--instruments", "binance:BTC")
        assert done.returncode == 2
        assert "CB_STORAGE_LOCAL_ROOT_PATH is not set" in done.stderr

    def test_a_root_from_the_environment_that_does_not_exist(self, tmp_path):
        done = cli("tables", env={"CB_STORAGE_LOCAL_ROOT_PATH": str(tmp_path / "gone")})
        assert done.returncode == 2
        assert "CB_STORAGE_LOCAL_ROOT_PATH" in done.stderr and "is not an existing folder" in done.stderr

    @pytest.mark.parametrize(("args", "message"), [
        (["--instruments", "binance"], "must look like '<exchange>:<coin>'"),
        (["--instruments", "binance:BTC' OR '1'='1"], "coin"),
        (["--instruments", "binance:BTC", "--end", "2024-01-02T00:00Z"], "is not a UTC day"),
        (["--instruments", "binance:BTC", "--start", "2024-01-03", "--end", "2024-01-02"], "before the first day"),
        (["--instruments", "binance:BTC", "--per-day", "0"], "--per-day 0"),
    ])
    def test_bad_coverage_arguments(self, root, args, message):
        done = cli("coverage", "--root", str(root), *args)
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert message in done.stderr

    def test_a_usage_error(self):
        done = cli("frobnicate")
        assert done.returncode == 2
        assert "invalid choice: 'frobnicate'" in done.stderr

    def test_maintain_refuses_a_parquet_table(self, root):
        done = cli("maintain", "--root", str(root), "--table", "daily_parquet")
        assert done.returncode == 2
        assert "only Delta tables are maintained" in done.stderr


def test_the_cli_imports_no_dagster():
    code = "import sys, cb_storage_dagster.cli.main; print(sorted(m for m in sys.modules if m.startswith('dagster')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


@pytest.mark.slow
def test_a_read_exits_0_every_time(root, tmp_path):
    """delta-rs can abort a short process at exit (issue 2184, exit 134): the CLI leaves with
    os._exit after flushing, so a successful command always exits 0."""
    for attempt in range(3):
        done = cli("read", "--root", str(root), "--instruments", "binance:BTC,binance:ETH,coinbase:BTC",
                   "--start", "2024-01-01T00:00Z", "--end", "2024-01-03T00:00Z", "--out", str(tmp_path / f"{attempt}.parquet"))
        assert done.returncode == 0, (attempt, done.stderr)


@pytest.mark.slow
def test_the_storage_of_the_environment_on_azurite(azurite, tmp_path):
    """No --root: the CB_STORAGE_* environment (here Azurite, with its account key) is the storage;
    the key never shows in the output."""
    from cb_storage_dagster.storage.manager import StorageManagerImpl
    from cb_storage_dagster_tests.support.azurite import new_container_backend

    backend = new_container_backend(azurite)
    manager = StorageManagerImpl(backend)
    manager.save_entry({"data_type": "ohlcv", "exchange": "binance", "coin": "BTC"}, candles("2024-01-02", 1440), table="ohlcv_1m")
    env = {
        "CB_STORAGE_BACKEND_TYPE": "azure", "CB_STORAGE_AZURE_CONTAINER_NAME": backend.container_name,
        "CB_STORAGE_AZURE_ACCOUNT_NAME": azurite.account_name, "CB_STORAGE_AZURE_ACCOUNT_KEY": azurite.account_key,
        "CB_STORAGE_AZURE_ENDPOINT": azurite.blob_endpoint,
    }
    listed = cli("tables", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["version"] == manager.table_version("ohlcv", table="ohlcv_1m")
    covered = cli("coverage", "--start", "2024-01-02", "--end", "2024-01-02", "--instruments", "binance:BTC,binance:ETH", env=env)
    assert covered.returncode == 1, covered.stderr
    assert "ETH (missing)" in covered.stdout
    out = tmp_path / "day.parquet"
    read = cli("read", "--instruments", "binance:BTC", "--start", "2024-01-02T00:00Z", "--end", "2024-01-03T00:00Z",
               "--out", str(out), env=env)
    assert read.returncode == 0, read.stderr
    assert pq.read_table(out).num_rows == 1440
    for done in (listed, covered, read):
        assert azurite.account_key not in done.stdout + done.stderr


def test_the_installed_console_script_is_the_same_command(root):
    """``pip install`` puts ``cb-storage`` next to the interpreter ([project.scripts])."""
    script = Path(sys.executable).with_name("cb-storage")
    assert script.exists(), f"{script} is missing: install the package (make setup) to get the console script"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CB_STORAGE_")}
    done = subprocess.run([str(script), "tables", "--root", str(root), "--json"],
                          capture_output=True, text=True, env=environ, timeout=120)
    assert done.returncode == 0, done.stderr
    assert {json.loads(line)["table"] for line in done.stdout.splitlines()} >= {"ohlcv_1m"}
