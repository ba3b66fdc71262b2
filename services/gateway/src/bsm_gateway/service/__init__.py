"""The gateway's service layer (see :mod:`.gateway`)."""

from .gateway import PRODUCER, Gateway, sanitize

__all__ = ["PRODUCER", "Gateway", "sanitize"]
