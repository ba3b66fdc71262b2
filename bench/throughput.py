"""End-to-end throughput and latency of the real stack (a benchmark, not a test).

Registers buyer–seller pairs and orders, publishes N ``MessageSubmitted`` events on
``bsm.messages.submitted`` as fast as the producer can, and reads ``bsm.messages.delivered``
until every one has its ``Delivered``. Prints throughput (messages per second, first submission
to last delivery) and latency percentiles (submission to the broker's timestamp of the
``Delivered`` record). The long-term target is 5,000 msg/s on the 2-core machine.

    .venv/bin/python bench/throughput.py --messages 2000 --pairs 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bsm_devstack.envfile import read_env_file  # noqa: E402

TARGET = 5000.0


def event(etype: str, data: dict, cid: str) -> bytes:
    return json.dumps({"event_id": str(uuid.uuid4()), "type": etype, "version": 1,
                       "occurred_at": datetime.now(UTC).isoformat(), "producer": "platform",
                       "correlation_id": cid, "causation_id": None, "data": data}).encode()


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def main(n: int, pairs: int, timeout: float) -> int:
    env = read_env_file(ROOT / ".stack" / "env")
    console = Console()
    run = uuid.uuid4().hex[:6]
    producer = AIOKafkaProducer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
                                enable_idempotence=True, acks="all", linger_ms=5)
    # No group: every partition is assigned; start at the end, before publishing anything.
    consumer = AIOKafkaConsumer("bsm.messages.delivered",
                                bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
                                enable_auto_commit=False, auto_offset_reset="latest")
    await producer.start()
    await consumer.start()
    try:
        parts = list(consumer.assignment())
        await consumer.seek_to_end(*parts)
        for p in parts:
            await consumer.position(p)

        console.print(f"[bold]bench {run}[/bold]: {pairs} buyer–seller pairs, {n} messages")
        for i in range(pairs):
            b, s, o = f"bb-{run}-{i}", f"bs-{run}-{i}", f"bo-{run}-{i}"
            await producer.send("bsm.parties", event("PartyRegistered", {
                "party_id": b, "role": "buyer", "email": f"{b}@bench.example",
                "display_name": "Bench Buyer"}, b), key=b.encode())
            await producer.send("bsm.parties", event("PartyRegistered", {
                "party_id": s, "role": "seller", "email": f"{s}@bench.example",
                "display_name": "Bench Seller"}, s), key=s.encode())
            await producer.send("bsm.orders", event("OrderPlaced", {
                "order_id": o, "buyer_id": b, "seller_id": s,
                "placed_at": datetime.now(UTC).isoformat()}, o), key=o.encode())
        await producer.flush()
        await asyncio.sleep(2)  # let the services learn the parties and orders first

        sent_at: dict[str, float] = {}
        started = time.time()
        for k in range(n):
            i = k % pairs
            mid = f"bm-{run}-{k}"
            sent_at[mid] = time.time()
            await producer.send("bsm.messages.submitted", event("MessageSubmitted", {
                "message_id": mid, "channel": "api", "sender": {"party_id": f"bb-{run}-{i}"},
                "recipient": {"party_id": f"bs-{run}-{i}"}, "order_id": f"bo-{run}-{i}",
                "subject": "bench", "text": "How is my order?",
                "submitted_at": datetime.now(UTC).isoformat()}, mid), key=mid.encode())
        await producer.flush()
        published = time.time()

        latencies: list[float] = []
        last = started
        deadline = time.monotonic() + timeout
        while len(latencies) < n and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batch.values():
                for r in records:
                    mid = json.loads(r.value)["data"]["message_id"]
                    if mid in sent_at:
                        done = r.timestamp / 1000
                        latencies.append(done - sent_at.pop(mid))
                        last = max(last, done)
            if latencies:
                console.print(f"  delivered {len(latencies)}/{n}", end="\r")
        console.print()
    finally:
        await consumer.stop()
        await producer.stop()

    table = Table(title=f"bsm end to end (submitted → Delivered), run {run}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    delivered = len(latencies)
    elapsed = max(last - started, 1e-9)
    rate = delivered / elapsed
    table.add_row("messages delivered", f"{delivered} / {n}")
    table.add_row("publish rate (producer)", f"{n / max(published - started, 1e-9):,.0f} msg/s")
    table.add_row("throughput end to end", f"{rate:,.0f} msg/s")
    table.add_row("target", f"{TARGET:,.0f} msg/s (ratio {rate / TARGET:.3f})")
    if latencies:
        table.add_row("latency p50", f"{pct(latencies, 0.50) * 1000:,.0f} ms")
        table.add_row("latency p99", f"{pct(latencies, 0.99) * 1000:,.0f} ms")
        table.add_row("latency max", f"{max(latencies) * 1000:,.0f} ms")
        table.add_row("latency mean", f"{statistics.fmean(latencies) * 1000:,.0f} ms")
    console.print(table)
    if delivered < n:
        console.print(f"[red]{n - delivered} messages not delivered within {timeout:.0f}s[/red]")
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.messages, args.pairs, args.timeout)))
