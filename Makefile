# bsm: the two commands a newcomer needs are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: help bootstrap up down status restart demo test test-unit bench bench-mail bench-policy bench-replay docs chaos

help:
	@echo "make demo       bring everything up and show a message delivered each way"
	@echo "make test       unit, contract, integration and end-to-end tests (brings the stack up)"
	@echo "make up|down|status   the local stack (Kafka, PostgreSQL, mail sink, five services)"
	@echo "                 BSM_KAFKA_BROKERS=3 BSM_SCALE=policy=2,delivery=2 BSM_STACK_PORT_OFFSET=1000 make up"
	@echo "make chaos      hostile workload through every door while processes are killed, then a"
	@echo "                 Jepsen-style check (CHAOS_MESSAGES, default 20000)"
	@echo "make restart    restart the five services after a code change"
	@echo "make test-unit  the fast tests only (no stack needed)"
	@echo "make bench      push messages through the real stack and print throughput and latency"
	@echo "make bench-mail  the mail path beside Postfix (installed when missing), same mails"
	@echo "make bench-policy  the cost of one policy decision"
	@echo "make bench-replay  the replay rate of the metrics projections (G2)"
	@echo "make docs       regenerate the contract's JSON-schema snapshots and AsyncAPI document"

bootstrap:
	@bash scripts/bootstrap.sh

up: bootstrap
	@$(PY) -m bsm_devstack up

down:
	@if [ -x $(PY) ]; then $(PY) -m bsm_devstack down; else echo "nothing to stop (no .venv)"; fi

status:
	@$(PY) -m bsm_devstack status

# Restart the five services (after changing their code); Kafka and PostgreSQL keep running.
restart:
	@for s in alias policy delivery metrics gateway; do $(PY) -m bsm_devstack restart-service $$s || exit 1; done

demo: up
	@$(PY) -m bsm_devstack.demo

# pytest exit code 5 means "no tests ran": that is a failure here, never a pass.
test: up
	@set +e; $(PY) -m pytest tests/unit tests/contract tests/integration tests/e2e; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

test-unit: bootstrap
	@set +e; $(PY) -m pytest tests/unit tests/contract/test_contract_documents.py \
	  tests/contract/test_event_parsing.py; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

bench: up
	@$(PY) bench/throughput.py $(BENCH_ARGS)

# Postfix (Debian's package, its own config under .stack/bench/postfix, loopback only) and bsm's
# mail door, the same mails into the same sink. Size: BENCH_MAIL_ARGS="--mails N --connections C".
bench-mail: up
	@$(PY) bench/mail.py $(BENCH_MAIL_ARGS)

bench-policy: bootstrap
	@$(PY) bench/policy_cost.py

bench-replay: up
	@$(PY) bench/replay.py $(REPLAY_ARGS)

docs: bootstrap
	@$(PY) -m bsm_shared.contract.docs --write --root .

# Mixed, partly hostile workload through every door while instances, a broker and PostgreSQL
# are killed; then the checker. Size: CHAOS_MESSAGES (default 20000); see README "make chaos".
chaos: up
	@$(PY) -m bsm_devstack.chaos $(CHAOS_ARGS)
