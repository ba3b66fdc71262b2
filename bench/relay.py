"""One hop of the bare relay chain ``make bench`` compares bsm with: consume a batch from one
topic (a consumer group, offsets committed after the batch), produce every record to the next
topic (acks=all, idempotent, not awaited one by one), wait for the acknowledgements, commit.
What a bsm service does with a batch, minus the database and the decisions.

    python bench/relay.py BOOTSTRAP FROM_TOPIC TO_TOPIC GROUP

Prints ``ready`` once it holds partitions; stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def relay(bootstrap: str, source: str, target: str, group: str) -> None:
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=5)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await producer.start()
    await consumer.start()
    try:
        while not consumer.assignment() and not stop.is_set():
            await consumer.getmany(timeout_ms=100)  # joins the group; the topic is still empty
        print("ready", flush=True)
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100, max_records=500)
            sent = [await producer.send(target, r.value, key=r.key)
                    for records in batch.values() for r in records]
            if sent:
                await asyncio.gather(*sent)
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


if __name__ == "__main__":
    asyncio.run(relay(*sys.argv[1:5]))
