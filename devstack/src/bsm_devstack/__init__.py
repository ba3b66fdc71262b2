"""bsm local development stack.

Runs everything the bsm services need as plain local processes (no Docker): a single-node
Apache Kafka broker (KRaft), PostgreSQL, an SMTP mail sink, generated signing keys, and the
services themselves. Everything lives under ``<repo>/.stack/``::

    python -m bsm_devstack up        # start (idempotent)
    python -m bsm_devstack status    # table of components
    python -m bsm_devstack down      # stop everything ``up`` started

Tests use :func:`bsm_devstack.kafka.ensure_topics` to create per-run prefixed topic sets and
:func:`bsm_devstack.envfile.read_env_file` to read ``.stack/env`` / ``.stack/secrets.env``.
"""

from bsm_devstack.envfile import read_env_file

__all__ = ["read_env_file"]
__version__ = "0.1.0"
