"""Composition root and adapter of the alias service.

Consumes ``bsm.parties`` (the address book) and ``bsm.messages.submitted``; produces
``bsm.messages.addressed`` or, when it stops a message, ``bsm.messages.bounced`` (stage
``alias``). Consumer group ``bsm.alias``; ack policy in :func:`bsm_shared.runtime.kafka.subscribe`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
from faststream import FastStream
from uuid6 import uuid7

from bsm_shared.blobs import BlobStore, LocalBlobStore
from bsm_shared.contract import BouncedEvent, MessageAddressedEvent
from bsm_shared.contract.payloads import (
    Bounced,
    MessageAddressed,
    MessageSubmitted,
    PartyErased,
    PartyRegistered,
    SellerSettingsChanged,
)
from bsm_shared.contract.limits import EventTooLarge
from bsm_shared.contract.wire import build_event, derived_event_id, unsigned_body
from bsm_shared.runtime.consumer import BatchHooks, Defer, Incoming, Outgoing
from bsm_shared.runtime.keyring import Keyring, is_party_sealed
from bsm_shared.runtime.pii import PiiVault
from bsm_shared.runtime.service import ServiceRuntime
from bsm_shared.runtime.transit import is_sealed, unseal
from bsm_shared.topics import Group, Topic

from . import core
from .door import DkimCheck, DnsLookup, DoorHandler, SpfCheck, dkim_checker, serve, spf_checker
from .fixed_dns import ZoneLookup
from .settings import AliasSettings
from .store import AliasStore, Loaded, migrations

log = logging.getLogger("bsm.alias")
PRODUCER = "alias"


class AliasHandlers(BatchHooks):
    def __init__(
        self, rt: ServiceRuntime, settings: AliasSettings, new_id: Callable[[], UUID],
        keyring: Keyring,
    ):
        self.rt = rt
        self.settings = settings
        self.vault = PiiVault(settings.pii_key_bytes())
        self.keyring = keyring
        self.new_id = new_id
        #: What the batch being applied preloaded (empty outside a batch, or event by event).
        self.loaded = Loaded()

    def store(self, conn: asyncpg.Connection) -> AliasStore:
        """The store for the consumer's handlers, reading what the batch preloaded."""
        return AliasStore(conn, self.rt.schema, self.vault, self.keyring, self.loaded)

    def unbatched_store(self, conn: asyncpg.Connection) -> AliasStore:
        """The store for the mail door: its own transactions, never the batch's preload (read
        in the consumer's transaction, uncommitted)."""
        return AliasStore(conn, self.rt.schema, self.vault, self.keyring)

    # -- set-based loading (BatchHooks) --------------------------------------------------------
    def begin(self) -> None:
        self.loaded = Loaded()

    async def preload(self, conn: asyncpg.Connection, topic: Topic,
                      events: Sequence[Incoming]) -> None:
        """A batch of submitted messages: their parties, relationships, the messages they
        answer and whether each was addressed before, in three queries, instead of three to
        five per message."""
        if topic != Topic.SUBMITTED:
            return
        msgs = [e.event.data for e in events]
        await self.store(conn).preload(
            [pid for m in msgs for pid in (m.sender.party_id, m.recipient.party_id) if pid],
            [m.in_reply_to for m in msgs if m.in_reply_to],
            own=[m.message_id for m in msgs],
            aliases=[local for m in msgs
                     if (local := core.addressed_alias(m, self.settings.mail_domain))])

    async def end(self, conn: asyncpg.Connection) -> None:
        """The messages the batch recorded, in one statement (was one per message)."""
        await self.store(conn).write_recorded()

    async def on_parties(self, conn: asyncpg.Connection, incoming: Incoming) -> list[Outgoing]:
        data = incoming.event.data
        if isinstance(data, PartyRegistered):
            # The platform may send the personal fields sealed with the party's key (then
            # erasure reaches bsm.parties too); None: that key is gone, the party was erased.
            email = await self.keyring.open(conn, data.email, "email", party_id=data.party_id)
            name = await self.keyring.open(conn, data.display_name, "display_name",
                                           party_id=data.party_id)
            stored = email is not None and name is not None and await self.store(
                conn).upsert_party(
                party_id=data.party_id, role=data.role, display_name=name,
                locale=data.locale, marketplace=data.marketplace, email=email,
                registered_at=incoming.event.occurred_at,
            )
            if not stored:
                log.info("registration of erased party %s ignored", data.party_id)
            incoming.released.append(f"party:{data.party_id}")
        elif isinstance(data, PartyErased):
            await self.store(conn).erase_party(data.party_id, data.erased_at)
            incoming.released.append(f"party:{data.party_id}")
        elif isinstance(data, SellerSettingsChanged):
            store = self.store(conn)
            for field, state in (("authorized_senders", "approved"), ("blocked_senders", "blocked")):
                values = getattr(data, field)
                if values is not None:  # absent: unchanged; [] clears the list
                    opened = [
                        await self.open(conn, v, f"SellerSettingsChanged.{field}", data.seller_id)
                        for v in values
                    ]
                    await store.replace_senders(
                        data.seller_id, state, [v for v in opened if v is not None]
                    )
        return []

    async def open(
        self, conn: asyncpg.Connection, value: str, context: str, seller_id: str
    ) -> str | None:
        """A settings address in plaintext (outside producers) or unsealed (our gateway:
        sealed with the seller's keyring key, or — events from before the keyring — with the
        transit key). ``None`` when it cannot be opened (the seller was erased)."""
        if is_party_sealed(value):
            return await self.keyring.open(conn, value, context, party_id=seller_id)
        if not is_sealed(value):
            return value
        key = self.settings.transit_key_bytes()
        if key is None:
            log.warning("a sealed %s arrived but BSM_TRANSIT_KEY is not set; ignored", context)
            return None
        return unseal(key, value, context)

    async def on_submitted(self, conn: asyncpg.Connection, incoming: Incoming) -> list[Outgoing]:
        msg: MessageSubmitted = incoming.event.data  # type: ignore[assignment]
        # First: a message that cannot travel on is stopped before anything waits for it.
        too_large = core.check_size(msg)
        if too_large is not None:
            return [self.bounce(incoming, msg, too_large)]
        store = self.store(conn)
        domain = self.settings.mail_domain
        wait = self.settings.party_wait_seconds

        sender = await store.party(msg.sender.party_id) if msg.sender.party_id else None
        if sender is None and msg.sender.party_id and not incoming.expired and wait > 0:
            raise Defer(f"party:{msg.sender.party_id}", wait)

        relationship: core.Relationship | None = None
        recipient: core.Party | None = None
        if msg.recipient.party_id:
            recipient = await store.party(msg.recipient.party_id)
            if recipient is None and not incoming.expired and wait > 0:
                raise Defer(f"party:{msg.recipient.party_id}", wait)
        elif local := core.addressed_alias(msg, domain):
            found = await store.by_alias(local)
            if found:
                relationship, recipient = found

        stop = core.check_parties(msg, sender, recipient)
        if stop is None and relationship is not None and sender is not None:
            if sender.party_id not in (relationship.buyer_id, relationship.seller_id):
                stop = core.Stop(
                    "alias_not_for_sender",
                    "This alias belongs to a conversation partner of another party.",
                    "Write to the aliases of your own conversations.",
                    "A3",
                )
        if stop is not None:
            return [self.bounce(incoming, msg, stop)]
        assert sender is not None and recipient is not None
        if relationship is None:
            buyer, seller = (sender, recipient) if sender.role == "buyer" else (recipient, sender)
            relationship = await store.relationship(buyer.party_id, seller.party_id, str(self.new_id()))

        parent = await store.prior_message(msg.in_reply_to) if msg.in_reply_to else None
        decided = core.decide_conversation(
            msg, relationship, parent, sender_role=sender.role,
            new_conversation_id=str(self.new_id()),
        )
        if isinstance(decided, core.Stop):
            return [self.bounce(incoming, msg, decided, relationship_id=relationship.relationship_id)]
        conversation_id, started_by = decided
        fields = core.addressed_fields(
            msg, sender=sender, recipient=recipient, relationship=relationship,
            conversation_id=conversation_id, started_by=started_by, mail_domain=domain,
        )
        data = MessageAddressed.model_validate(
            {**msg.model_dump(), **fields.model_dump()}
        )
        event = build_event(
            MessageAddressedEvent, data,
            event_id=derived_event_id(incoming.event.event_id, PRODUCER),
            occurred_at=self.rt.clock(), producer=PRODUCER,
            correlation_id=msg.message_id, causation_id=incoming.event.event_id,
        )
        try:
            # Measured as the outbox will write it (canonical bytes and room for the batch
            # signature, `unsigned_body`), before the message is recorded:
            # an event Kafka cannot carry would otherwise be a dead letter, not an outcome.
            unsigned_body(event)
        except EventTooLarge as exc:
            return [self.bounce(incoming, msg, core.too_large_to_carry(exc.size),
                                relationship_id=relationship.relationship_id)]
        if not await store.record_message(
            message_id=msg.message_id, conversation_id=conversation_id,
            relationship_id=relationship.relationship_id, started_by=started_by,
            order_id=msg.order_id,
        ):
            # The same message id submitted again (under a new event id): it already has its
            # outcome on the way; addressing it twice would give it two.
            log.warning("message %s was already addressed; duplicate ignored", msg.message_id)
            return []
        return [Outgoing(Topic.ADDRESSED, relationship.relationship_id, event)]

    def bounce(
        self, incoming: Incoming, msg: MessageSubmitted, stop: core.Stop,
        relationship_id: str | None = None,
    ) -> Outgoing:
        now: datetime = self.rt.clock()
        data = Bounced(
            message_id=msg.message_id, stage="alias", reason_code=stop.reason_code,
            rule=stop.rule, explanation=stop.explanation, remedy=stop.remedy, bounced_at=now,
            submitted_at=msg.submitted_at, relationship_id=relationship_id,
            sender_party_id=msg.sender.party_id, recipient_party_id=msg.recipient.party_id,
            order_id=msg.order_id,
        )
        event = build_event(
            BouncedEvent, data,
            event_id=derived_event_id(incoming.event.event_id, PRODUCER),
            occurred_at=now, producer=PRODUCER,
            correlation_id=msg.message_id, causation_id=incoming.event.event_id,
        )
        return Outgoing(Topic.BOUNCED, relationship_id or msg.message_id, event)


def create_runtime(
    settings: AliasSettings, *, new_id: Callable[[], UUID] = uuid7,
    spf_check: SpfCheck | None = None, dkim_check: DkimCheck | None = None,
    dns_lookup: DnsLookup | None = None, blobs: BlobStore | None = None, **kwargs: object,
) -> ServiceRuntime:
    """The alias service; with ``settings.smtp_inbound`` set, also the mail door. ``dns_lookup``
    replaces the DNS of SPF and DKIM (tests; else ``settings.dns_zone``, else the network),
    ``spf_check``/``dkim_check`` the checks themselves, ``blobs`` the local blob store."""
    holder: dict[str, Any] = {}
    if dns_lookup is None and settings.dns_zone:
        dns_lookup = ZoneLookup.from_file(settings.dns_zone)

    async def door(rt: ServiceRuntime) -> None:
        where = settings.inbound_address()
        assert where is not None
        h = holder["door"] = DoorHandler(
            rt, store=holder["h"].unbatched_store, mail_domain=settings.mail_domain,
            blobs=blobs or LocalBlobStore(Path(settings.blob_dir)),
            spf_check=spf_check or spf_checker(dns_lookup, settings.spf_timeout_seconds),
            dkim_check=dkim_check or dkim_checker(dns_lookup, settings.spf_timeout_seconds),
            clock=rt.clock, new_id=new_id, verp_key=settings.verp_key_bytes(),
        )
        await serve(h, *where, hostname=settings.mail_domain,
                    data_size_limit=settings.max_message_bytes)

    def handlers(rt: ServiceRuntime) -> dict:
        h = holder["h"] = AliasHandlers(rt, settings, new_id, keyring)
        # Order matters: parties are applied before the messages of the same batch.
        return {Topic.PARTIES: h.on_parties, Topic.SUBMITTED: h.on_submitted}

    keyring = settings.keyring()
    rt = ServiceRuntime(
        name=PRODUCER,
        settings=settings,
        group=Group.ALIAS,
        inputs=[Topic.PARTIES, Topic.SUBMITTED],
        migrations=[*migrations(settings.db_schema or PRODUCER), *keyring.migrations()],
        handlers=handlers,
        hooks=lambda _rt: holder["h"],
        background=[door] if settings.inbound_address() else [],
        **kwargs,  # type: ignore[arg-type]
    )
    rt.door = holder  # type: ignore[attr-defined]  # tests read the door's counters here
    rt.keyring = keyring  # type: ignore[attr-defined]
    return rt


def create_app(settings: AliasSettings, **kwargs: object) -> FastStream:
    """The alias service as a FastStream application."""
    return create_runtime(settings, **kwargs).faststream_app()
