"""Replay rate (G2) of the metrics projections (a benchmark, not a test).

Writes N realistic, signed events — orders, approvals, deliveries in both directions, reports
and "no response needed" marks, in the proportions of a real conversation — to a topic set of
its own (prefix ``bench<id>.``), archives their ids in a schema of its own as the live record
would have, runs :func:`bsm_metrics.replay.replay` over them and prints events/s and the ratio
to the target (100,000 events/s, issue 14). The topics and schemas are removed afterwards.

    .venv/bin/python bench/replay.py --events 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bsm_devstack.envfile import read_env_file  # noqa: E402
from bsm_devstack.kafka import ensure_topics  # noqa: E402
from bsm_metrics import record  # noqa: E402
from bsm_metrics.replay import replay  # noqa: E402
from bsm_shared.contract.signing import Signer, Verifier, load_private_key  # noqa: E402
from bsm_shared.topics import Topic, TopicNames  # noqa: E402

TARGET = 100_000.0  # issue 14, item 7
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)


def conversation(i: int) -> list[tuple[Topic, str, dict]]:
    """One order's events: order, buyer question, seller answer (both approved + delivered),
    and now and then a report or a "no response needed"."""
    order, buyer, seller = f"o{i}", f"b{i % 997}", f"s{i % 89}"
    conv, rel = f"c{i}", f"r{i % 5000}"
    q, a = f"q{i}", f"a{i}"
    at = T0 + timedelta(minutes=i)
    base = {"relationship_id": rel, "conversation_id": conv, "order_id": order,
            "subject": "Re: pedido", "text": "Hola, ¿cuándo llega mi pedido? " * 8}
    out: list[tuple[Topic, str, dict]] = [(Topic.ORDERS, "platform", {
        "type": "OrderPlaced", "data": {"order_id": order, "buyer_id": buyer,
                                        "seller_id": seller, "placed_at": at.isoformat(),
                                        "items": [{"sku": "x"}]}})]
    for mid, sender, recipient, role, when in ((q, buyer, seller, "buyer", at),
                                                (a, seller, buyer, "seller", at + timedelta(hours=3))):
        msg = {**base, "message_id": mid, "sender_party_id": sender, "recipient_party_id": recipient,
               "sender_role": role, "submitted_at": when.isoformat()}
        out.append((Topic.POLICY_CHECKED, "policy", {"type": "PolicyChecked", "data": {
            **msg, "channel": "web", "sender": {"party_id": sender},
            "recipient": {"party_id": recipient}, "recipient_role": "seller" if role == "buyer"
            else "buyer", "sender_alias": "x" * 16 + "@m.example",
            "recipient_alias": "y" * 16 + "@m.example", "sender_display_name": "pii:v1:p:AAAA",
            "conversation_started_by": "buyer", "verdict": "approved", "essential": False,
            "violations": [], "checked_at": when.isoformat()}}))
        out.append((Topic.DELIVERED, "delivery", {"type": "Delivered", "data": {
            **msg, "sender_alias": "x" * 16 + "@m.example", "recipient_alias": "y" * 16 + "@m.example",
            "delivered_at": when.isoformat(), "channels": ["mailbox", "email"]}}))
    if i % 10 == 0:
        out.append((Topic.REPORTED, "gateway", {"type": "Reported", "data": {
            "message_id": a, "reporter_party_id": buyer, "reason": "spam",
            "reported_at": (at + timedelta(hours=4)).isoformat()}}))
    if i % 7 == 0:
        out.append((Topic.RESPONSE_NOT_NEEDED, "gateway", {"type": "ResponseNotNeeded", "data": {
            "message_id": q, "party_id": seller, "marked_at": (at + timedelta(hours=1)).isoformat()}}))
    return out


async def main(n: int, profile: bool) -> int:
    env = {**read_env_file(ROOT / ".stack" / "env"), **read_env_file(ROOT / ".stack" / "secrets.env")}
    console = Console()
    run = uuid.uuid4().hex[:8]
    prefix, schema = f"bench{run}.", f"bench_replay_{run}"
    signers = {p: Signer(p, load_private_key(env[f"BSM_{p.upper()}_SIGNING_KEY"]))
               for p in ("policy", "delivery", "gateway")}
    names = TopicNames(prefix)
    await ensure_topics(env["KAFKA_BOOTSTRAP_SERVERS"], prefix)
    conn = await asyncpg.connect(env["BSM_DATABASE_URL"])
    producer = AIOKafkaProducer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], acks="all",
                                linger_ms=20, max_batch_size=1024 * 1024,
                                enable_idempotence=True)
    await producer.start()
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        for statement in record.migrations(schema):
            await conn.execute(statement)
        ids: list[tuple] = []
        written, i, started = 0, 0, time.perf_counter()
        pending = []
        while written < n:
            for topic, producer_name, body in conversation(i):
                event = {"event_id": str(uuid.uuid4()), "version": 1,
                         "occurred_at": T0.isoformat(), "producer": producer_name,
                         "correlation_id": body["data"].get("message_id") or body["data"]["order_id"],
                         "causation_id": None, **body}
                if producer_name in signers:
                    event["signature"] = signers[producer_name].sign(event)
                pending.append(await producer.send(names(topic), json.dumps(event).encode(),
                                                   key=str(i).encode()))
                ids.append((uuid.UUID(event["event_id"]), names(topic), 0, written, event["type"],
                            1, producer_name, T0, "x", None, None, None, True, True, False,
                            "{}", None))
                written += 1
            i += 1
            if len(pending) > 20000:
                await asyncio.gather(*pending)
                pending.clear()
                console.print(f"written {written:,}/{n:,}")
        await asyncio.gather(*pending)
        console.print(f"wrote {written:,} signed events in {time.perf_counter() - started:.1f}s")
        # As the live record would have: every event archived, verified on arrival.
        await conn.copy_records_to_table(
            "archive", schema_name=schema, records=ids,
            columns=["event_id", "topic", "partition", "kafka_offset", "type", "version",
                     "producer", "occurred_at", "correlation_id", "causation_id", "order_id",
                     "message_id", "signed", "verified", "redacted", "event", "trust_error"])
        verifier = Verifier.from_b64(json.loads(env["BSM_TRUSTED_KEYS"]))
        for verify in (False, True):
            if profile:
                import cProfile
                import pstats

                profiler = cProfile.Profile()
                profiler.enable()
            result = await replay(bootstrap=env["KAFKA_BOOTSTRAP_SERVERS"],
                                  database_url=env["BSM_DATABASE_URL"], verifier=verifier,
                                  schema=schema, prefix=prefix, verify=verify, compare=False)
            if profile:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
            console.print(
                f"replay (verify={verify}): {result.events:,} events in {result.seconds:.2f}s = "
                f"[bold]{result.rate:,.0f} events/s[/bold] ({result.applied:,} applied, "
                f"{result.untrusted:,} untrusted); target {TARGET:,.0f}: ratio "
                f"{result.rate / TARGET:.2f}")
    finally:
        await producer.stop()
        for s in (schema, f"{schema}_replay"):
            await conn.execute(f"DROP SCHEMA IF EXISTS {s} CASCADE")
        await conn.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"])
        await admin.start()
        try:
            await admin.delete_topics(list(names.all_topics()))
        finally:
            await admin.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--profile", action="store_true", help="Print where the replay's time goes.")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.events, args.profile)))
