"""A service's offsets and lag gauge against real Kafka: records waiting in a partition show as
lag until the service has consumed them and committed past them; offsets gathered between
commits are committed when it stops."""

import asyncio

from aiokafka.admin import AIOKafkaAdminClient
from bsm_policy.app import create_runtime
from bsm_policy.settings import PolicySettings
from tests.integration.test_policy_service import alias_event
from tests.stack import running


async def _assigned(consumer, timeout: float = 30.0) -> list:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not consumer.assignment():
        assert loop.time() < deadline, "the consumer was never assigned partitions"
        await asyncio.sleep(0.1)
    return list(consumer.assignment())


async def test_records_a_paused_service_has_not_consumed_show_as_lag_until_it_commits_past_them(
    kafka, prefix, settings_for, env
):
    settings = settings_for(PolicySettings, "policy", order_wait_seconds=0)
    async with running(create_runtime(settings)) as runtime:
        consumer = runtime.subscriber.consumer
        parts = await _assigned(consumer)
        assert (await runtime.observe())["lag"] == 0
        consumer.pause(*parts)
        sent = [alias_event(env, order_id=None) for _ in range(3)]
        for mid, value in sent:
            await kafka.publish(prefix + "bsm.messages.addressed", value, mid)

        figures = await runtime.observe()
        assert figures["lag"] == 3, figures
        gauge = runtime.metrics.lag
        group = runtime.topics.group(runtime._group)
        per_partition = {tp: gauge.labels(group, tp.topic, str(tp.partition))._value.get()
                         for tp in parts}
        assert sum(per_partition.values()) == 3, per_partition

        consumer.resume(*parts)
        mids = {mid for mid, _ in sent}
        decided = await kafka.collect(prefix + "bsm.messages.policy-checked",
                                      lambda e: e["data"]["message_id"] in mids, count=3)
        assert {e["data"]["message_id"] for e in decided} == mids
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while (figures := await runtime.observe())["lag"]:
            assert loop.time() < deadline, f"the offsets were never committed: {figures}"
            await asyncio.sleep(0.2)


async def test_a_stopping_service_commits_the_offsets_it_gathered(kafka, prefix, settings_for, env):
    settings = settings_for(PolicySettings, "policy", order_wait_seconds=0)
    runtime = create_runtime(settings)
    async with running(runtime):
        await _assigned(runtime.subscriber.consumer)
        first, second = alias_event(env, order_id=None), alias_event(env, order_id=None)
        await kafka.publish(prefix + "bsm.messages.addressed", first[1], first[0])
        await kafka.collect(prefix + "bsm.messages.policy-checked",
                            lambda e: e["data"]["message_id"] == first[0])
        runtime.commits.interval = 600  # from now on, offsets are gathered
        await kafka.publish(prefix + "bsm.messages.addressed", second[1], second[0])
        await kafka.collect(prefix + "bsm.messages.policy-checked",
                            lambda e: e["data"]["message_id"] == second[0])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not runtime.commits.pending:  # the batch's transaction, then its offsets
            assert loop.time() < deadline, "the second batch's offsets never came"
            await asyncio.sleep(0.05)
        assert (await runtime.observe())["lag"] == 1, "gathered, not committed yet"
    admin = AIOKafkaAdminClient(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"])
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(runtime.topics.group(runtime._group))
    finally:
        await admin.close()
    assert sum(m.offset for tp, m in committed.items()
               if tp.topic == prefix + "bsm.messages.addressed") == 2
