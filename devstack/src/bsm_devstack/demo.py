"""``make demo``: show bsm doing its job on the running local stack.

Registers a buyer and a seller (as the platform's account service would, on ``bsm.parties``),
places an order (``bsm.orders``), sends a message each way through the gateway's HTTP API,
waits for both mails at the local mail sink, and prints them and the order's dispute timeline.
"""

from __future__ import annotations

import asyncio
import base64
import email
import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from email import policy
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer
from rich.console import Console
from rich.panel import Panel

from .envfile import read_env_file
from .mailsink import find_by_message_id

console = Console()


def _event(etype: str, data: dict, correlation_id: str) -> bytes:
    return json.dumps({
        "event_id": str(uuid.uuid4()), "type": etype, "version": 1,
        "occurred_at": datetime.now(UTC).isoformat(), "producer": "platform",
        "correlation_id": correlation_id, "causation_id": None, "data": data,
    }).encode()


def _bearer(key_b64: str, party_id: str, role: str) -> dict[str, str]:
    """What a signed-in person's browser sends: a bearer token naming them and their role."""
    from bsm_gateway.auth import issue_token  # the local stack holds the gateway's token key

    token = issue_token(base64.b64decode(key_b64), party_id, role)
    return {"Authorization": f"Bearer {token}"}


def _mask(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}{'*' * max(len(local) - 1, 3)}@{domain}"


async def _wait_for_mail(sink: Path, message_id: str, domain: str, timeout: float = 60.0):
    wanted = f"<{message_id}@{domain}>"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = find_by_message_id(sink, wanted)
        if path is not None:
            return path, email.message_from_bytes(path.read_bytes(), policy=policy.default)
        await asyncio.sleep(0.05)
    raise SystemExit(f"The message {message_id} did not reach the mail sink within {timeout:.0f}s;"
                     " see .stack/logs/ for the services' logs.")


def _show_mail(title: str, path: Path, mail, real: str) -> None:
    body = mail.get_body(preferencelist=("plain", "html"))
    console.print(Panel(
        f"[bold]From:[/bold] {mail['From']}\n[bold]To:[/bold] {mail['To']}\n"
        f"[bold]Subject:[/bold] {mail['Subject']}\n[bold]Message-ID:[/bold] {mail['Message-ID']}"
        + (f"\n[bold]In-Reply-To:[/bold] {mail['In-Reply-To']}" if mail["In-Reply-To"] else "")
        + f"\n\n{body.get_content().strip() if body else ''}\n\n"
        f"[dim]SMTP envelope recipient (the only place the real address appears): "
        f"{_mask(real)}\nstored as {path}[/dim]",
        title=title, expand=False))


async def run(root: Path) -> None:
    env = {**read_env_file(root / ".stack" / "env"),
           **read_env_file(root / ".stack" / "secrets.env")}
    suffix = uuid.uuid4().hex[:6]
    buyer, seller, order = f"buyer-{suffix}", f"seller-{suffix}", f"ORDER-{suffix.upper()}"
    buyer_mail, seller_mail = f"ana.garcia.{suffix}@gmail.example", f"ventas.{suffix}@mueblessol.example"

    console.rule("[bold]bsm demo")
    console.print("1. The platform registers a buyer and a seller and places an order (Kafka).")
    producer = AIOKafkaProducer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], acks="all",
                                enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait("bsm.parties", _event("PartyRegistered", {
            "party_id": buyer, "role": "buyer", "email": buyer_mail, "display_name": "Ana García",
            "locale": "es-ES", "marketplace": "ES"}, buyer), key=buyer.encode())
        await producer.send_and_wait("bsm.parties", _event("PartyRegistered", {
            "party_id": seller, "role": "seller", "email": seller_mail,
            "display_name": "Muebles Sol", "locale": "es-ES", "marketplace": "ES"}, seller),
            key=seller.encode())
        await producer.send_and_wait("bsm.orders", _event("OrderPlaced", {
            "order_id": order, "buyer_id": buyer, "seller_id": seller,
            "placed_at": datetime.now(UTC).isoformat(),
            "items": [{"sku": "SILLA-ROBLE", "category": "furniture"}]}, order),
            key=order.encode())
    finally:
        await producer.stop()
    console.print(f"   buyer [cyan]{buyer}[/cyan], seller [cyan]{seller}[/cyan] "
                  f"(business name 'Muebles Sol'), order [cyan]{order}[/cyan]")

    sink, domain = Path(env["BSM_MAIL_SINK_DIR"]), env["BSM_MAIL_DOMAIN"]
    async with httpx.AsyncClient(base_url=env["BSM_GATEWAY_URL"], timeout=30) as http:
        console.print("2. The buyer writes to the seller (POST /v1/messages).")
        started = time.monotonic()
        r = await http.post("/v1/messages", headers=_bearer(env["BSM_GATEWAY_TOKEN_KEY"], buyer,
                                                            "buyer"), json={
            "recipient_party_id": seller, "order_id": order,
            "subject": "¿Cuándo llega mi silla?",
            "text": "Hola, compré una silla de roble. ¿Sabéis cuándo sale?"})
        r.raise_for_status()
        question = r.json()["message_id"]
        path, mail = await _wait_for_mail(sink, question, domain)
        console.print(f"   delivered in {time.monotonic() - started:.2f}s")
        _show_mail("Mail the seller received", path, mail, seller_mail)

        console.print("3. The seller replies in the same conversation (in_reply_to).")
        started = time.monotonic()
        # A message exists for its recipient once the gateway knows it reached them (issue 11):
        # the mail can arrive a moment before the gateway reads the Delivered event.
        await _wait_visible(http, env, seller, question)
        r = await http.post("/v1/messages", headers=_bearer(env["BSM_GATEWAY_TOKEN_KEY"], seller,
                                                            "seller"), json={
            "recipient_party_id": buyer, "order_id": order,
            "in_reply_to": question, "subject": "Re: ¿Cuándo llega mi silla?",
            "text": "¡Hola Ana! Sale mañana por la mañana. Un saludo, Muebles Sol."})
        r.raise_for_status()
        reply = r.json()["message_id"]
        path, mail = await _wait_for_mail(sink, reply, domain)
        console.print(f"   delivered in {time.monotonic() - started:.2f}s")
        _show_mail("Mail the buyer received", path, mail, buyer_mail)

    console.print(f"4. The dispute team's view of {order} (bsm dispute {order}):")
    expected = 9  # OrderPlaced + 4 events for each of the two messages
    async with httpx.AsyncClient(base_url=env["BSM_METRICS_URL"], timeout=10,
                                 headers=_metrics_auth(env)) as http:
        for _ in range(100):
            r = await http.get(f"/v1/orders/{order}/timeline")
            if r.status_code == 200 and len(r.json()["events"]) >= expected:
                break
            await asyncio.sleep(0.2)
    subprocess.run([sys.executable, "-m", "bsm_cli.main", "dispute", order], check=False)

    console.print("5. The seller's response-time figures (F1, from event times):")
    async with httpx.AsyncClient(base_url=env["BSM_METRICS_URL"], timeout=10,
                                 headers=_metrics_auth(env)) as http:
        figures = (await http.get(f"/v1/sellers/{seller}/response-times",
                                  params={"window": "30d"})).json()
    if "answered" in figures:
        console.print(
            f"   {figures['answered']} of {figures['buyer_messages']} buyer message(s) answered, "
            f"average {figures['average_response_time_seconds'] or 0:.2f}s, late response rate "
            f"{(figures['late_response_rate'] or 0) * 100:.0f}% "
            f"(GET {env['BSM_METRICS_URL']}/v1/sellers/{seller}/response-times)")

    console.print(f"6. Ana asks to be forgotten: bsm erase {buyer} (crypto-shredding):")
    await _erasure(env, buyer, order)

    console.rule("[bold]Where things are")
    console.print(
        f"gateway API      {env['BSM_GATEWAY_URL']}  (docs: {env['BSM_GATEWAY_URL']}/docs)\n"
        f"record / metrics {env['BSM_METRICS_URL']}  (try: .venv/bin/bsm dispute {order})\n"
        f"Kafka            {env['KAFKA_BOOTSTRAP_SERVERS']}\n"
        f"PostgreSQL       {env['BSM_DATABASE_URL']}\n"
        f"delivered mail   {env['BSM_MAIL_SINK_DIR']}\n"
        f"logs             {root / '.stack' / 'logs'}\n"
        f"environment      {root / '.stack' / 'env'}\n"
        "The stack keeps running: `make status`, `make down`."
    )


async def _wait_visible(http: httpx.AsyncClient, env: dict[str, str], party: str,
                        message_id: str, timeout: float = 30.0) -> None:
    """Until ``message_id`` shows in ``party``'s message center (GET /v1/messages/{id})."""
    headers = _bearer(env["BSM_GATEWAY_TOKEN_KEY"], party, "seller")
    deadline = time.monotonic() + timeout
    while (await http.get(f"/v1/messages/{message_id}", headers=headers)).status_code != 200:
        if time.monotonic() > deadline:
            raise SystemExit(f"message {message_id} did not show in the message center within "
                             f"{timeout:.0f} s: see .stack/logs/gateway*.log")
        await asyncio.sleep(0.1)


def _metrics_auth(env: dict[str, str]) -> dict[str, str]:
    """The metrics service answers services only: its credential from `.stack/secrets.env`."""
    return {"Authorization": f"Bearer {env['BSM_METRICS_TOKEN']}"}


async def _erasure(env: dict[str, str], buyer: str, order: str) -> None:
    """Her name travels in the events sealed with her own key: readable before, not after."""
    import base64

    import asyncpg

    from bsm_shared.runtime.keyring import Keyring

    async with httpx.AsyncClient(base_url=env["BSM_METRICS_URL"], timeout=10,
                                 headers=_metrics_auth(env)) as http:
        events = (await http.get(f"/v1/orders/{order}/timeline")).json()["events"]
    sealed = next(e["event"]["data"]["sender_display_name"] for e in events
                  if e["type"] == "MessageAddressed" and e["event"]["data"]["sender_party_id"] == buyer)

    async def name() -> str | None:
        conn = await asyncpg.connect(env["BSM_DATABASE_URL"])
        try:  # a fresh keyring each time, as another process would ask
            return await Keyring(base64.b64decode(env["BSM_KEYRING_KEY"])).open(
                conn, sealed, "display_name")
        finally:
            await conn.close()

    console.print(f"   her name in MessageAddressed: {sealed[:40]}… → opens to {await name()!r}")
    subprocess.run([sys.executable, "-m", "bsm_cli.main", "erase", buyer, "--operator",
                    "demo-operator", "--reason", "demo", "--yes"], check=False)
    console.print(f"   the same event now: opens to {await name()!r} — the event and its "
                  "signature are unchanged, the record still replays")


def main() -> None:
    root = Path.cwd()
    while not (root / "pom.xml").exists() and root != root.parent:
        root = root.parent
    asyncio.run(run(root))


if __name__ == "__main__":
    main()
