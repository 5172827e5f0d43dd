"""Latency benchmark: product reads through Azurite behind a proxy that adds a round trip.

Azure Blob / ADLS costs a round trip per request (10-30 ms in-region). ``tc netem`` is not
available here (STACK-NOTES), so Azurite (started like the tests start it, on a free port of
127.0.0.1) sits behind a small asyncio TCP proxy on 127.0.0.1, run in its own process, that
forwards every chunk after ``--delay-ms`` (10 ms each way: a 20 ms round trip), in order and
without limiting throughput. The tables are written straight to Azurite; every timed read
goes through the proxy. Each read is reported in ms and as a multiple of the round trip and
of the issue's two-round-trip floor (one for the log, one for the data files in parallel):

* ``get_range`` of one instrument x 1 day and x D days, warm (one manager, repeated);
* the D-day read in a new process (open + read, timed inside the process after imports: the
  Azure SDK, deltalake, pandas and pyarrow are imported before the timer, as every process
  loads them once; until session 8 they were imported lazily inside the timed read, ~190 ms),
  after one such process not counted, as many processes as ``--rounds`` (until session 19:
  three, the first counted: their medians moved by 2x the floor from run to run);
* ``list_coins`` from a new manager (same process).

    python benchmarks/bench_latency.py                       # 4 instruments x 30 days, both layouts
    python benchmarks/bench_latency.py --days 10 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


# -- the proxy (its own process) -----------------------------------------------------------
REQUEST_LOG = os.environ.get("LATENCY_PROXY_LOG")
"""If set, the proxy appends each request line it forwards to this file (to count round trips)."""


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, log: bool = False) -> None:
    """Forward ``reader`` to ``writer``, each chunk ``delay`` seconds after it arrived."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, data = await queue.get()
            if not data:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(send())
    loop = asyncio.get_running_loop()
    try:
        while True:
            data = await reader.read(1 << 16)
            queue.put_nowait((loop.time() + delay, data))
            if log and REQUEST_LOG and data[:4] in (b"GET ", b"HEAD", b"PUT ", b"POST", b"DELE"):
                with open(REQUEST_LOG, "a") as out:
                    out.write(f"{time.time():.3f} {data.split(b' HTTP/')[0].decode(errors='replace')}\n")
            if not data:
                break
    except ConnectionError:
        queue.put_nowait((loop.time(), b""))
    await sender


async def _serve_proxy(listen_port: int, target_port: int, delay: float) -> None:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pump(client_reader, server_writer, delay, log=True), _pump(server_reader, client_writer, delay),
                             return_exceptions=True)

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def start_proxy(listen_port: int, target_port: int, delay_ms: float) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, __file__, "--proxy", str(listen_port), str(target_port), str(delay_ms)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        raise RuntimeError("the latency proxy did not start")
    return process


# -- the reads -----------------------------------------------------------------------------
COLD = """
import json, os, sys, time, datetime as dt
started = time.perf_counter()
import azure.storage.blob, deltalake, pandas, pyarrow.dataset, pyarrow.parquet  # libraries every process loads once
from cb_storage_dagster.storage.backends.azure.backend import AzureBlobBackend
from cb_storage_dagster.storage import StorageManagerImpl
args = json.loads(sys.argv[1])
t = time.perf_counter()
manager = StorageManagerImpl(AzureBlobBackend(args["container"], **args["backend"]))
frame = manager.get_range({"data_type": "ohlcv", "exchange": args["exchange"], "coin": args["coin"]},
                          dt.datetime.fromisoformat(args["start"]), dt.datetime.fromisoformat(args["end"]))
print(json.dumps({"ms": (time.perf_counter() - t) * 1000, "import_ms": (t - started) * 1000, "rows": len(frame)}))
sys.stdout.flush(); os._exit(0)
"""


def median_ms(fn, rounds: int, warmup: int = 1) -> tuple[float, Any]:
    samples, out = [], None
    for i in range(warmup + rounds):
        t = time.perf_counter()
        out = fn()
        if i >= warmup:
            samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples), out


def write(server: Any, layout: str, instruments: int, days: int) -> str:
    """A new container with ``instruments`` x ``days`` written straight to Azurite, one
    commit per exchange-day; its name."""
    from peer_bench import product_table
    from peer_data import EXCHANGE
    from peer_data import days as day_list

    from cb_storage_dagster.storage import StorageManagerImpl, WriteScope
    from cb_storage_dagster_tests.support.azurite import new_container_backend

    container = f"latency-{uuid.uuid4().hex[:16]}"
    writer = StorageManagerImpl(new_container_backend(server, container_name=container), default_layout=layout)
    for day in day_list(days):
        writer.write_partitions("ohlcv", product_table(instruments, day), WriteScope.of_exchange_days([(EXCHANGE, day)]))
    return container


def round_trip_ms(proxy_port: int, rounds: int) -> float:
    """One HTTP request on a kept-alive connection through the proxy (Azurite answers an
    unauthenticated request at once)."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", proxy_port)

    def request() -> None:
        connection.request("GET", "/devstoreaccount1/none?comp=list")
        connection.getresponse().read()

    request()
    ms, _ = median_ms(request, rounds)
    connection.close()
    return ms


def measure(server: Any, proxy_port: int, container: str, layout: str, instruments: int, days: int,
            rounds: int) -> dict[str, Any]:
    from peer_data import EXCHANGE, MINUTES, coin_name
    from peer_data import days as day_list

    from cb_storage_dagster.storage import StorageManagerImpl
    from cb_storage_dagster.storage.backends.azure.backend import AzureBlobBackend

    all_days = day_list(days)
    backend_args = {"endpoint": f"http://127.0.0.1:{proxy_port}/{server.account_name}",
                    "account_name": server.account_name, "account_key": server.account_key}
    slow = AzureBlobBackend(container, **backend_args)
    coin = coin_name(instruments // 2)
    key = {"data_type": "ohlcv", "exchange": EXCHANGE, "coin": coin}
    utc = dt.timezone.utc
    start = dt.datetime.combine(all_days[0], dt.time(), utc)
    end = dt.datetime.combine(all_days[-1] + dt.timedelta(days=1), dt.time(), utc)
    mid = dt.datetime.combine(all_days[len(all_days) // 2], dt.time(), utc)
    out: dict[str, Any] = {"layout": layout}
    manager = StorageManagerImpl(slow)

    def check(frame: Any, expected: int) -> None:
        if len(frame) != expected:
            raise AssertionError(f"{layout}: read {len(frame)} rows, expected {expected}")

    ms, frame = median_ms(lambda: manager.get_range(key, mid, mid + dt.timedelta(days=1)), rounds)
    check(frame, MINUTES)
    out["1 instrument x 1 day, warm"] = ms
    ms, frame = median_ms(lambda: manager.get_range(key, start, end), rounds)
    check(frame, days * MINUTES)
    out[f"1 instrument x {days} days, warm"] = ms
    cold = []
    payload = json.dumps({"container": container, "backend": backend_args, "exchange": EXCHANGE, "coin": coin,
                          "start": start.isoformat(), "end": end.isoformat()})
    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    for i in range(1 + rounds):
        result = subprocess.run([sys.executable, "-c", COLD, payload], capture_output=True, text=True, check=True,
                                env=env)
        answer = json.loads(result.stdout.strip().splitlines()[-1])
        check(range(answer["rows"]), days * MINUTES)
        if i:  # (the first process is not counted)
            cold.append(answer["ms"])
    out[f"1 instrument x {days} days, new process"] = statistics.median(cold)
    ms, coins = median_ms(lambda: StorageManagerImpl(AzureBlobBackend(container, **backend_args)).list_coins(
        EXCHANGE, "ohlcv"), rounds)
    if len(coins) != instruments:
        raise AssertionError(f"{layout}: listed {len(coins)} coins, expected {instruments}")
    out["list_coins, new manager"] = ms
    return out


def report(results: dict[str, Any]) -> str:
    rtt = results["round_trip_ms"]
    lines = [f"{results['instruments']} instruments x {results['days']} days, daily writes, no maintenance; "
             f"proxy delay {results['delay_ms']:.0f} ms each way (round trip {rtt:.0f} ms; one HTTP request "
             f"measured {results['request_ms']:.1f} ms; two-round-trip floor {2 * rtt:.0f} ms); load {results['load_before'][0]:.2f} -> {results['load_after'][0]:.2f}", "",
             "| layout | read | ms | x round trip | x floor (2 round trips) |", "|---|---|---|---|---|"]
    for layout in results["layouts"]:
        for case, ms in layout.items():
            if case == "layout":
                continue
            lines.append(f"| {layout['layout']} | {case} | {ms:,.1f} | {ms / rtt:.1f} | {ms / (2 * rtt):.1f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instruments", type=int, default=4)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--delay-ms", type=float, default=10.0, help="delay of each forwarded chunk, each way")
    parser.add_argument("--layouts", default="instrument,exchange")
    parser.add_argument("--out", help="JSON result path (default: benchmarks/results/latency-<time>.json)")
    args = parser.parse_args()
    from cb_storage_dagster_tests.support.azurite import AzuriteServer, _free_port

    results: dict[str, Any] = {"instruments": args.instruments, "days": args.days, "delay_ms": args.delay_ms,
                               "round_trip_ms": 2 * args.delay_ms, "layouts": [], "load_before": os.getloadavg()}
    with AzuriteServer() as server:
        proxy_port = _free_port()
        proxy = start_proxy(proxy_port, server.port, args.delay_ms)
        try:
            layouts = [layout.strip() for layout in args.layouts.split(",")]
            print(f"writing {args.instruments} x {args.days} days in each layout", flush=True)
            containers = {layout: write(server, layout, args.instruments, args.days) for layout in layouts}
            results["request_ms"] = round_trip_ms(proxy_port, args.rounds)
            for layout in layouts:
                print(f"{layout}: reading through the proxy", flush=True)
                results["layouts"].append(measure(server, proxy_port, containers[layout], layout, args.instruments,
                                                  args.days, args.rounds))
        finally:
            proxy.terminate()
            proxy.wait(timeout=10)
    results["load_after"] = os.getloadavg()
    out = Path(args.out) if args.out else HERE / "results" / f"latency-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print()
    print(report(results))
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--proxy":
        asyncio.run(_serve_proxy(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]) / 1000))
    else:
        from cb_storage_dagster.entrypoint import run_and_exit

        run_and_exit(main)
