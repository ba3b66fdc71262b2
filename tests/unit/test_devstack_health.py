"""What `make status` and `make chaos` call lag, and when the pipeline counts as quiet."""

from bsm_devstack.health import GroupLag, Health, OutboxBacklog, partition_lag


def test_lag_runs_from_the_committed_offset_or_the_log_start_to_the_end():
    assert partition_lag(10, 0, 10) == 0
    assert partition_lag(7, 0, 10) == 3
    assert partition_lag(None, 0, 10) == 10  # never committed: everything is still to read
    assert partition_lag(None, 4, 10) == 6  # records before the log start are gone
    assert partition_lag(2, 4, 10) == 6
    assert partition_lag(12, 0, 10) == 0


def test_quiet_means_every_group_caught_up_and_every_outbox_published():
    groups = {"bsm.policy": GroupLag("bsm.policy", lag=0)}
    boxes = {"policy": OutboxBacklog("policy", pending=0)}
    assert Health(groups, boxes, {}).quiet
    assert not Health({"g": GroupLag("g", lag=1)}, boxes, {}).quiet
    assert not Health({"g": GroupLag("g", error="KafkaConnectionError")}, boxes, {}).quiet
    assert not Health(groups, {"policy": OutboxBacklog("policy", pending=2)}, {}).quiet
    assert not Health(groups, {"policy": OutboxBacklog("policy", error="down")}, {}).quiet
