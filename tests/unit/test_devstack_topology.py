"""The local stack's shape (bsm_devstack.topology): ports follow one offset, a cluster of three
nodes gets distinct ports, extra instances of the doors get ports of their own, and the knobs
are refused with a reason when the stack could not run with them."""


import pytest

from bsm_devstack.kafka import replication_for, server_properties, Node
from bsm_devstack.paths import StackPaths
from bsm_devstack.topology import (
    Topology,
    TopologyError,
    format_scale,
    parse_brokers,
    parse_scale,
    resolve,
)


def test_the_default_stack_listens_where_it_always_did():
    topo = Topology()
    assert topo.bootstrap == "127.0.0.1:19092"
    assert topo.database_url == "postgresql://bsm:bsm@127.0.0.1:15432/bsm"
    env = topo.env()
    assert env["BSM_GATEWAY_URL"] == "http://127.0.0.1:18080"
    assert env["BSM_METRICS_URL"] == "http://127.0.0.1:18081"
    assert env["BSM_SMTP_INBOUND"] == "127.0.0.1:12525"
    assert env["BSM_SMTP_RELAY"] == "127.0.0.1:12526"


def test_an_offset_moves_every_port_of_the_stack_and_nothing_else():
    base, moved = Topology(), Topology(port_offset=1000)
    assert [p + 1000 for _, p in base.all_ports()] == [p for _, p in moved.all_ports()]
    assert moved.env()["BSM_GATEWAY_HTTP_PORT"] == "19080"
    assert moved.env()["BSM_METRICS_HTTP_PORT"] == "19081"
    assert moved.database_url.endswith(":16432/bsm")


def test_a_stack_at_offset_1000_never_takes_a_port_of_the_default_stack():
    scale = parse_scale("alias=6,policy=6,delivery=6,metrics=6,gateway=6")
    default = {p for _, p in Topology(brokers=3, scale=scale).all_ports()}
    moved = {p for _, p in Topology(port_offset=1000, brokers=3, scale=scale).all_ports()}
    assert not default & moved


def test_no_two_parts_of_a_scaled_three_broker_stack_share_a_port():
    topo = Topology(port_offset=1000, brokers=3, scale=parse_scale(
        "alias=6,policy=6,delivery=6,metrics=6,gateway=6"))
    ports = [p for _, p in topo.all_ports()]
    assert len(ports) == len(set(ports))
    assert topo.bootstrap == "127.0.0.1:20092,127.0.0.1:20094,127.0.0.1:20096"


def test_extra_instances_of_the_doors_get_their_own_ports_and_say_so_in_their_settings():
    topo = Topology(scale=parse_scale("gateway=2,alias=2,policy=2"))
    gateway2 = topo.instance("gateway-2")
    assert gateway2.port == 18090 and gateway2.env() == {"BSM_GATEWAY_HTTP_PORT": "18090",
                                                         "BSM_GATEWAY_PROMETHEUS_PORT": "18195"}
    assert topo.instance("alias-2").env()["BSM_ALIAS_PROMETHEUS_PORT"] == "18192"
    assert topo.instance("alias-2").env()["BSM_SMTP_INBOUND"] == "127.0.0.1:12535"
    assert topo.instance("policy-2").port is None
    assert topo.instance("policy-2").env() == {"BSM_POLICY_PROMETHEUS_PORT": "18193"}
    assert topo.instance("alias").metrics_url == "http://127.0.0.1:18182/metrics"
    assert topo.instance("gateway-2").metrics_url == "http://127.0.0.1:18195/metrics"
    assert topo.env()["BSM_GATEWAY_URLS"] == "http://127.0.0.1:18080,http://127.0.0.1:18090"
    assert topo.env()["BSM_SMTP_INBOUNDS"] == "127.0.0.1:12525,127.0.0.1:12535"


def test_the_first_instance_keeps_the_service_name_and_every_instance_has_its_own_marker():
    names = [i.name for i in Topology(scale=parse_scale("policy=3")).instances("policy")]
    assert names == ["policy", "policy-2", "policy-3"]
    markers = {i.marker for i in Topology(scale=parse_scale("policy=3")).instances()}
    assert len(markers) == 5 + 2


def test_scale_names_unknown_services_bad_counts_and_bad_syntax():
    assert parse_scale(" policy=2, delivery=3 ")["delivery"] == 3
    assert parse_scale("")["alias"] == 1
    for bad, why in (("polcy=2", "unknown service"), ("policy=0", "between 1"),
                     ("policy=7", "between 1"), ("policy", "service=count"),
                     ("policy=two", "whole number")):
        with pytest.raises(TopologyError, match=why):
            parse_scale(bad)
    assert parse_scale(format_scale(parse_scale("metrics=2")))["metrics"] == 2


def test_a_cluster_has_one_or_three_brokers():
    assert parse_brokers("3") == 3 and parse_brokers(None) == 1
    with pytest.raises(TopologyError, match="quorum"):
        parse_brokers("2")


def test_the_environment_overrides_what_the_last_up_recorded_knob_by_knob():
    recorded = Topology(port_offset=1000, brokers=3, scale=parse_scale("policy=2"))
    assert resolve({}, recorded) == recorded
    again = resolve({"BSM_SCALE": "delivery=2"}, recorded)
    assert again.port_offset == 1000 and again.brokers == 3
    assert again.scale["policy"] == 1 and again.scale["delivery"] == 2
    assert resolve({"BSM_STACK_PORT_OFFSET": ""}, recorded).port_offset == 0
    assert Topology.from_json(recorded.to_json()) == recorded
    with pytest.raises(TopologyError, match="between 0 and"):
        resolve({"BSM_STACK_PORT_OFFSET": "60000"})


def test_three_brokers_replicate_every_topic_three_times_with_two_in_sync(tmp_path):
    assert replication_for(3) == (3, {"min.insync.replicas": "2"})
    assert replication_for(1) == (1, {"min.insync.replicas": "1"})
    topo = Topology(port_offset=1000, brokers=3)
    props = server_properties(Node(StackPaths(tmp_path), topo, topo.kafka_brokers()[1]))
    assert "node.id=2\n" in props
    assert "controller.quorum.voters=1@127.0.0.1:20093,2@127.0.0.1:20095,3@127.0.0.1:20097" \
        in props
    for line in ("default.replication.factor=3", "min.insync.replicas=2",
                 "offsets.topic.replication.factor=3", "transaction.state.log.min.isr=2",
                 "listeners=PLAINTEXT://127.0.0.1:20094,CONTROLLER://127.0.0.1:20095"):
        assert line in props


def test_a_service_gets_every_broker_of_a_cluster_to_bootstrap_from():
    """Chaos found it: the runtime handed "a:1,b:2,c:3" to FastStream as one string, which
    aiokafka read as one host, and no service started against the 3-broker cluster."""
    from bsm_shared.runtime.kafka import bootstrap_servers

    assert bootstrap_servers("127.0.0.1:20092, 127.0.0.1:20094,127.0.0.1:20096") == [
        "127.0.0.1:20092", "127.0.0.1:20094", "127.0.0.1:20096"]
    assert bootstrap_servers("127.0.0.1:19092") == ["127.0.0.1:19092"]


def test_the_stacks_services_reach_postgresql_through_its_unix_socket_and_the_env_file_by_tcp(
    tmp_path,
):
    """``.stack/env`` publishes the TCP address (psql, tests, tools); the services the stack
    starts get the same database, user and port through the cluster's socket directory."""
    from urllib.parse import parse_qs, urlsplit

    from bsm_devstack.envfile import write_env_file
    from bsm_devstack.services import process_env

    paths = StackPaths(tmp_path)
    topo = Topology(port_offset=100)
    paths.stack.mkdir(parents=True)
    write_env_file(paths.env_file, topo.env())
    write_env_file(paths.secrets_file, {})
    instance = topo.instances("policy")[0]
    assert process_env(paths)["BSM_DATABASE_URL"] == "postgresql://bsm:bsm@127.0.0.1:15532/bsm"
    url = urlsplit(process_env(paths, instance)["BSM_DATABASE_URL"])
    assert (url.scheme, url.netloc, url.path) == ("postgresql", "bsm:bsm@", "/bsm")
    assert parse_qs(url.query) == {"host": [str(paths.pg_sockets)], "port": ["15532"]}
