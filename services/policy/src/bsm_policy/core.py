"""The walking skeleton's entry point, kept for callers that still import it: the rulebook
now lives in :mod:`bsm_policy.engine` (pure) and :mod:`bsm_policy.content` (detectors)."""

from __future__ import annotations

from bsm_shared.contract.payloads import MessageAddressed

from .content import sanitize_html
from .engine import (
    Context,
    Decision,
    OrderFacts,
    WaitForOrder,
    decide as _decide,
)

__all__ = ["Decision", "OrderFacts", "WaitForOrder", "decide", "sanitize_html"]


def decide(msg: MessageAddressed, order: OrderFacts | None, *, wait_over: bool) -> Decision:
    """Decide with the order alone (no party facts): see :func:`bsm_policy.engine.decide`."""
    return _decide(msg, Context(order=order, wait_over=wait_over))
