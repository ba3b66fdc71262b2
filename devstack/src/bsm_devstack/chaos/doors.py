"""The workload's clients: the gateway's HTTP API, the mail door (SMTP) and the input topics.

Each call returns a :class:`.model.Result`. A temporary failure — a connection refused or cut
(the instance was just killed), HTTP 502/503/504, an SMTP 4xx, a Kafka error — is retried on
the next instance until the operation's deadline; then the result is ``unknown``
(indeterminate: the door may or may not have taken it). A refusal (HTTP 4xx, SMTP 5xx) and an
HTTP 5xx server error are final.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from datetime import UTC, datetime

import aiosmtplib
import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from bsm_devstack.chaos import content
from bsm_devstack.chaos.content import Pair
from bsm_devstack.chaos.model import ACCEPTED, ERROR, REFUSED, UNKNOWN, Op, Result

TEMPORARY_HTTP = {502, 503, 504}


class Doors:
    def __init__(self, env: dict[str, str], *, run: str, deadline: float = 90.0) -> None:
        self.run = run
        self.deadline = deadline
        self.gateways = (env.get("BSM_GATEWAY_URLS") or env["BSM_GATEWAY_URL"]).split(",")
        self.mail_doors = [
            (h, int(p)) for h, _, p in (a.rpartition(":") for a in
                                        (env.get("BSM_SMTP_INBOUNDS")
                                         or env["BSM_SMTP_INBOUND"]).split(","))]
        self.token_key = base64.b64decode(env["BSM_GATEWAY_TOKEN_KEY"])
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(20.0, connect=5.0))
        self.producer = AIOKafkaProducer(
            bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], acks="all",
            enable_idempotence=True, linger_ms=5, request_timeout_ms=30000,
            max_request_size=2 * 1024 * 1024)
        self._tokens: dict[tuple[str, str], str] = {}
        self.aliases: dict[int, tuple[str, str]] = {}  # pair → (buyer alias, seller alias)

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.producer.stop()
        await self.http.aclose()

    def _token(self, party: str, role: str) -> str:
        from bsm_gateway.auth import issue_token  # the gateway's own token format

        if (party, role) not in self._tokens:
            self._tokens[(party, role)] = issue_token(self.token_key, party, role)
        return self._tokens[(party, role)]

    async def call(self, op: Op, pair: Pair) -> Result:
        if op.door == "api":
            return await self.api(op, pair)
        if op.door == "smtp":
            return await self.smtp(op, pair)
        return await self.kafka(op, pair)

    # -- the gateway --------------------------------------------------------------------------
    async def api(self, op: Op, pair: Pair) -> Result:
        method, path, sender, body = content.api_request(op, pair)
        role = "seller" if sender == pair.seller else "buyer"
        headers = {"Authorization": f"Bearer {self._token(sender, role)}"}
        kwargs: dict = {"json": body} if isinstance(body, dict) else {}
        if isinstance(body, bytes):
            kwargs = {"content": body}
            headers["Content-Type"] = "application/json"
        stop_at = time.monotonic() + self._deadline(op)
        attempt, last, last_code = 0, "", None
        while time.monotonic() < stop_at:
            url = self.gateways[(op.n + attempt) % len(self.gateways)] + path
            attempt += 1
            try:
                r = await self.http.request(method, url, headers=headers, **kwargs)
            except httpx.HTTPError as exc:  # (the last answer, if any, is kept in last_code)
                last = f"{type(exc).__name__}: {exc}" if last_code is None else last
                await asyncio.sleep(min(0.25 * attempt, 3))
                continue
            if r.status_code in TEMPORARY_HTTP:
                last, last_code = r.text[:200], r.status_code
                await asyncio.sleep(min(0.25 * attempt, 3))
                continue
            if 200 <= r.status_code < 300:
                mid = None
                with contextlib.suppress(Exception):
                    mid = r.json().get("message_id")
                return Result(op, ACCEPTED, r.status_code, r.text[:300], mid, attempts=attempt)
            status = REFUSED if 400 <= r.status_code < 500 else ERROR
            return Result(op, status, r.status_code, r.text[:500], attempts=attempt)
        return Result(op, UNKNOWN, last_code, last, attempts=attempt)

    def _deadline(self, op: Op) -> float:
        """How long temporary failures are retried: a hostile input gets a third of it (a
        killed instance is back within seconds; a "try again" that lasts is a finding)."""
        return self.deadline / 3 if op.hostile else self.deadline

    # -- the mail door ------------------------------------------------------------------------
    async def smtp(self, op: Op, pair: Pair) -> Result:
        aliases = self.aliases.get(pair.index)
        if aliases is None:
            return Result(op, UNKNOWN, None, "no alias known for this pair (its first message "
                                            "was never addressed)")
        to = aliases[0] if op.kind == "seller_mail" else aliases[1]
        sender, raw = content.mail(op, pair, to_alias=to, now=datetime.now(UTC))
        stop_at = time.monotonic() + self._deadline(op)
        attempt, last, last_code = 0, "", None
        while time.monotonic() < stop_at:
            host, port = self.mail_doors[(op.n + attempt) % len(self.mail_doors)]
            attempt += 1
            code, text = await self._send_mail(host, port, sender, to, raw,
                                               raw_size=op.kind == "smtp_oversized")
            if code is None or 400 <= code < 500:
                if code is not None or last_code is None:  # keep the door's last answer
                    last, last_code = text, code
                await asyncio.sleep(min(0.25 * attempt, 3))
                continue
            if 200 <= code < 300:
                mid = text.strip().rsplit(" ", 1)[-1] if "queued as" in text else None
                return Result(op, ACCEPTED, code, text[:300], mid, attempts=attempt)
            return Result(op, REFUSED, code, text[:500], attempts=attempt)
        return Result(op, UNKNOWN, last_code, last, attempts=attempt)

    @staticmethod
    async def _send_mail(host: str, port: int, sender: str, to: str, raw: bytes, *,
                         raw_size: bool) -> tuple[int | None, str]:
        """(reply code, text) of the mail's fate; (None, why) when the connection failed."""
        smtp = aiosmtplib.SMTP(hostname=host, port=port, timeout=60,
                               local_hostname="client.chaos.example")
        try:
            await smtp.connect()
            if raw_size:  # no SIZE announced: the door must stop the DATA itself
                await smtp.ehlo()
                await smtp.mail(sender)
                await smtp.rcpt(to)
                response = await smtp.data(raw)
                return response.code, response.message
            _errors, message = await smtp.sendmail(sender, [to], raw)
            return 250, message
        except aiosmtplib.SMTPRecipientsRefused as exc:
            first = exc.recipients[0]
            return first.code, first.message
        except aiosmtplib.SMTPResponseException as exc:
            return exc.code, exc.message
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return None, f"{type(exc).__name__}: {exc}"
        finally:
            with contextlib.suppress(Exception):
                smtp.close()

    # -- the input topics ---------------------------------------------------------------------
    async def kafka(self, op: Op, pair: Pair) -> Result:
        status = "delivered" if op.n % 3 == 0 else "shipped"
        topic, key, value, mid = content.kafka_record(self.run, op, pair, datetime.now(UTC),
                                                      status=status)
        return await self.publish(op, topic, key, value, mid)

    async def publish(self, op: Op, topic: str, key: str, value: bytes,
                      mid: str | None = None) -> Result:
        stop_at = time.monotonic() + self.deadline
        attempt, last = 0, ""
        while time.monotonic() < stop_at:
            attempt += 1
            try:
                md = await self.producer.send_and_wait(topic, value, key=key.encode())
                return Result(op, ACCEPTED, None, "", mid, (md.topic, md.partition, md.offset),
                              attempts=attempt)
            except KafkaError as exc:
                last = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(min(0.5 * attempt, 3))
        return Result(op, UNKNOWN, None, last, mid, attempts=attempt)
