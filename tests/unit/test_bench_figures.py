"""The benchmarks' pure parts: their arithmetic (bench/figures.py: percentiles, rates, CPU from
/proc stat lines, the report's tables and closing lines, which other tools read), the bench's
Postfix configuration (bench/postfix.py) and the mail benchmark's mails and log reading."""

import email
import email.policy
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench import postfix
from bench.figures import (
    CpuRow, Latency, Phase, ProcStat, Sample, cpu_rows, cpu_table, descendants, hops, kafka_line,
    mail_line, only, parse_stat, peak_rss, phase_rows, rate, rss_line, sample, schedule,
    spread_line, total_row, tree_ticks)
from bench.mail import compose, relayed
from bsm_devstack.chaos import content

# A real line of /proc/<pid>/stat (a Python process), fields 1-52.
STAT = ("4242 (python3) S 4200 4242 4200 0 -1 4194560 12066 0 0 0 731 129 17 4 20 0 3 0 "
        "1141707 420659200 19876 18446744073709551615 1 1 0 0 0 0 0 16781312 16386 0 0 0 17 1 "
        "0 0 0 0 0 0 0 0 0 0 0 0 0")


def stat(pid, ppid, utime=0, stime=0, cutime=0, cstime=0):
    return ProcStat(pid, ppid, utime, stime, cutime, cstime, 0)


def test_a_stat_line_gives_parent_times_and_resident_pages():
    s = parse_stat(STAT)
    assert (s.pid, s.ppid, s.utime, s.stime, s.cutime, s.cstime, s.rss_pages) == (
        4242, 4200, 731, 129, 17, 4, 19876)
    assert (s.own, s.total) == (860, 881)


def test_a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields():
    line = STAT.replace("(python3)", "(postgres: bsm bsm 127.0.0.1(5432) idle)")
    assert parse_stat(line) == parse_stat(STAT)


def test_a_tree_counts_every_live_descendant_and_the_children_each_reaped():
    stats = {1: stat(1, 0, utime=100), 10: stat(10, 1, utime=5, cutime=40),
             11: stat(11, 10, stime=7), 12: stat(12, 1, utime=3), 99: stat(99, 2, utime=1000)}
    assert sorted(descendants(1, stats)) == [1, 10, 11, 12]
    assert tree_ticks(1, stats) == 100 + 5 + 40 + 7 + 3
    assert tree_ticks(10, stats) == 52
    assert tree_ticks(7, stats) is None


def test_the_bench_process_alone_leaves_its_children_to_their_own_rows():
    stats = {5: stat(5, 1, utime=20, cutime=300), 6: stat(6, 5, utime=50)}
    got = sample({"bench": 5, "relay": 6}, stats, trees={"relay"})
    assert got.ticks == {"bench": (5, 20), "relay": (6, 50)}


def test_cpu_per_message_from_two_samples():
    before = Sample({"policy": (10, 1000), "postgres": (20, 500)})
    after = Sample({"policy": (10, 1400), "postgres": (20, 600)})
    rows = cpu_rows(before, after, messages=200, seconds=2.0, clock_ticks=100)
    assert rows == [CpuRow("policy", 4000.0, 20.0, 2.0), CpuRow("postgres", 1000.0, 5.0, 0.5)]
    assert total_row(rows) == CpuRow("all", 5000.0, 25.0, 2.5)


def test_a_restarted_or_vanished_process_is_marked_not_misread():
    before = Sample({"policy": (10, 1000), "alias": (11, 50)})
    after = Sample({"policy": (12, 30), "delivery": (13, 10)})
    rows = {r.name: r for r in cpu_rows(before, after, messages=10, seconds=1.0,
                                        clock_ticks=100)}
    assert (rows["policy"].cpu_ms, rows["policy"].note) == (300.0, "restarted")
    assert rows["delivery"].note == "started during the phase"
    assert (rows["alias"].cpu_ms, rows["alias"].note) == (0.0, "gone before the end")


@pytest.mark.parametrize("values, p50, p99, top", [
    ([0.5], 0.5, 0.5, 0.5),
    ([float(v) for v in range(1, 101)], 50.5, 99.01, 100.0),
    ([0.1, 0.2, 0.3, 10.0], 0.25, 9.709, 10.0),
])
def test_latency_percentiles_interpolate_between_ranks(values, p50, p99, top):
    lat = Latency.of(values)
    assert lat is not None
    assert (lat.count, lat.max) == (len(values), top)
    assert lat.p50 == pytest.approx(p50)
    assert lat.p99 == pytest.approx(p99)


def test_no_latencies_give_no_percentiles():
    assert Latency.of([]) is None


def test_rate_is_messages_over_first_submission_to_last_outcome():
    assert rate(2000, 100.0, 127.4) == pytest.approx(2000 / 27.4)
    assert rate(0, 100.0, 101.0) == 0.0
    assert rate(10, 100.0, 100.0) == 0.0


def test_an_open_loop_schedule_is_evenly_spaced_whatever_happens():
    assert schedule(4.0, 3, 10.0) == [10.0, 10.25, 10.5]
    with pytest.raises(ValueError):
        schedule(0.0, 3, 10.0)


def test_the_cpu_table_has_a_column_per_phase_and_a_dash_where_a_process_was_absent():
    a = Phase("bare chain", 10, 10, 0.0, 1.0, cpu=[CpuRow("relay 1", 5.0, 0.5, 0.005)])
    b = Phase("bsm burst", 10, 10, 0.0, 1.0, cpu=[CpuRow("policy", 20.0, 2.0, 0.02),
                                                  CpuRow("relay 1", 0.0, 0.0, 0.0, "restarted")])
    header, rows = cpu_table([a, b])
    assert header == ["process", "bare chain (ms/msg)", "bsm burst (ms/msg)"]
    assert rows[0] == ["relay 1", "0.50", "0.00 (restarted)"]
    assert rows[1] == ["policy", "-", "2.00"]
    assert rows[-2] == ["all", "0.50", "2.00"]


def test_peak_rss_is_the_largest_of_any_phase():
    a = Phase("a", 1, 1, 0, 1, peak_rss={"policy": 90, "alias": 70})
    b = Phase("b", 1, 1, 0, 1, peak_rss={"policy": 120})
    assert peak_rss([a, b]) == {"policy": 120, "alias": 70}


def test_a_phase_is_complete_only_when_every_message_finished():
    phase = Phase("bsm burst", 2000, 1999, 0.0, 20.0, latencies=[1.0])
    assert not phase.complete and phase.rate == pytest.approx(99.95)


def test_the_closing_lines_read_exactly_as_documented():
    assert kafka_line(73.4, 3386.2, 0.4804) == (
        "kafka path: bsm 73 msg/s, bare chain 3386 msg/s, ratio 0.022; p99 at half rate 480 ms")
    assert kafka_line(10, 0, None).endswith("ratio 0.000; p99 at half rate n/a ms")
    assert mail_line(290.0, 583.0) == "mail path: bsm 290 msg/s, Postfix 583 msg/s, ratio 0.497"
    pattern = (r"kafka path: bsm \d+ msg/s, bare chain \d+ msg/s, ratio \d+\.\d{3}; "
               r"p99 at half rate \d+ ms")
    assert re.fullmatch(pattern, kafka_line(1700, 3400, 0.25))


def test_a_path_phase_counts_only_the_named_processes_and_their_numbered_instances():
    roots = {"kafka": 1, "kafka-2": 2, "policy": 3, "policy-2": 4, "mail sink": 5,
             "kafkaesque": 6}
    assert only(roots, "kafka") == {"kafka": 1, "kafka-2": 2}
    assert only(roots, "mail sink", "policy") == {"policy": 3, "policy-2": 4, "mail sink": 5}


def test_the_rss_line_names_the_largest_service_and_every_one_over_the_target():
    mb = 2**20
    peaks = {"kafka": 900 * mb, "policy": 80 * mb, "policy-2": 160 * mb, "gateway": 95 * mb}
    line = rss_line(peaks, ("policy", "gateway"))
    assert line.startswith("largest service RSS 160 MB (policy-2; target ≤ 150 MB")
    assert line.endswith("over the target: policy-2)")
    assert "every service within it" in rss_line({"gateway": 95 * mb}, ("gateway",))
    assert rss_line({"kafka": 900 * mb}, ("policy",)) == "service RSS: not measured"


def test_the_spread_line_lists_each_members_partitions_and_the_idle_ones():
    assert spread_line("bsm.policy", [3, 3]) == "bsm.policy: 2 members, partitions 3 + 3"
    assert spread_line("bsm.alias", [0, 9]) == "bsm.alias: 2 members, partitions 9 + 0 (1 idle)"
    assert spread_line("bsm.metrics", [48]) == "bsm.metrics: 1 member, partitions 48"
    assert spread_line("bsm.gateway", []) == "bsm.gateway: no members"


def test_the_bench_postfix_listens_on_loopback_only_and_keeps_everything_in_its_own_folder():
    base = Path("/srv/wt/.stack/bench/postfix")
    files = postfix.render(base, 14527, 14526)
    main = {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in
            files["main.cf"].splitlines() if "=" in line and not line.startswith("#"))}
    assert main["inet_interfaces"] == "127.0.0.1"
    assert main["mynetworks"] == "127.0.0.0/8"
    assert main["relayhost"] == "[127.0.0.1]:14526"
    assert main["mydestination"] == ""  # nothing is delivered locally
    for key in ("queue_directory", "data_directory", "maillog_file"):
        assert main[key].startswith(str(base)), key
    assert "/etc/postfix" not in files["main.cf"]
    listeners = [line.split()[0] for line in files["master.cf"].splitlines()
                 if not line.startswith("#") and line.split()[1:2] == ["inet"]]
    assert listeners == ["127.0.0.1:14527"]


def test_a_bench_mail_is_about_one_and_a_half_kilobytes_from_the_buyer_to_the_sellers_alias():
    pair = content.pairs("benchr1", 2)[1]
    m = compose("benchr1", 7, pair, "s1@marketplace.example",
                datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
    parsed = email.message_from_bytes(m.raw, policy=email.policy.default)
    assert (m.sender, m.to) == (pair.buyer_email, "s1@marketplace.example")
    assert parsed["From"] == pair.buyer_email  # header and envelope sender agree (DMARC)
    assert m.sender.endswith(".example")  # the stack's dns.zone gives SPF for *.example
    assert parsed["Message-ID"] == f"<benchr1.7@{pair.buyer_email.rpartition('@')[2]}>"
    assert 1200 <= len(m.raw) <= 1700
    assert "pedido" in parsed.get_content()


def test_only_relayed_mails_count_from_the_postfix_log():
    lines = [
        b"Jan 02 03:04:05 postfix-bench postfix/smtp[9]: A1: to=<s@marketplace.example>, "
        b"relay=127.0.0.1[127.0.0.1]:14526, delay=0.12, delays=0.01/0/0/0.1, dsn=2.0.0, "
        b"status=sent (250 Message accepted for delivery)",
        b"Jan 02 03:04:05 postfix-bench postfix/smtp[9]: A2: to=<s@marketplace.example>, "
        b"delay=3.5, status=deferred (connect refused)",
        b"Jan 02 03:04:05 postfix-bench postfix/qmgr[8]: A1: removed",
        b"Jan 02 03:04:06 postfix-bench postfix/smtp[9]: A3: status=sent (250 ok)",
    ]
    assert relayed(lines) == [0.12, None]


def test_the_steady_latency_is_split_by_stage_from_each_messages_own_events():
    sent = {"m1": 0.0, "m2": 1.0, "m3": 2.0}
    seen = {"m1": {"MessageAddressed": 0.1, "PolicyChecked": 0.3},
            "m2": {"MessageAddressed": 1.2, "PolicyChecked": 1.25},
            "m3": {"MessageAddressed": 2.1}}  # bounced at policy: no PolicyChecked
    outcome = {"m1": 0.7, "m2": 1.45, "m3": 2.2}
    split = hops(sent, seen, (("alias", "MessageAddressed"), ("policy", "PolicyChecked")),
                 outcome, last="delivery")
    expected = {"alias": [0.1, 0.2], "policy": [0.2, 0.05], "delivery": [0.4, 0.2]}
    assert list(split) == ["alias", "policy", "delivery"]
    for stage, values in expected.items():
        assert split[stage] == pytest.approx(values), stage
    phase = Phase("bsm steady", 3, 3, 0.0, 2.2, latencies=[0.7, 0.45, 0.2], hops=split)
    assert ("  delivery p50 / p99", "300 / 398 ms") in phase_rows(phase)
