"""Hostile input at the gateway's HTTP door: every route of the OpenAPI document (and the ones
outside it) meets U+0000 in each path parameter and query parameter, every JSON body field
meets U+0000 and lone surrogates, file names meet CR/LF, encoded words, paths and 1,000
characters, and bodies meet their size limits — each answered with a 4xx in the API's error
shape, before anything is published or stored; never a 500."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote

from httpx import ASGITransport, AsyncClient
from starlette.routing import Mount

from bsm_shared.blobs import blob_path
from bsm_shared.contract.limits import (
    MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS, MAX_BODY_BYTES, MAX_EVENT_BYTES, MAX_FILENAME_CHARS,
    body_bytes,
)
from tests import gateway_support as g
from tests.factories import uid
from tests.integration.test_gateway_api import seed

ROLES = ("seller", "buyer", "dispute", "operator")
NUL = "\x00"


@asynccontextmanager
async def gateway(settings: Any) -> AsyncIterator[tuple[Any, AsyncClient]]:
    """The gateway in this process; an app exception comes back as the 500 a client would
    get (instead of being raised into the test), so the walk can report every route."""
    async with g.running_gateway(settings) as (app, _):
        transport = ASGITransport(app=app, raise_app_exceptions=False)
        async with AsyncClient(transport=transport, base_url="http://gw") as http:
            yield app, http


# -- the walk ---------------------------------------------------------------------------------

def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [resolve(doc, s) for s in schema[key] if s.get("type") != "null"]
            return options[0] if options else {"type": "null"}
    return schema


def example(doc: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A small valid value of ``schema`` (required fields only): enough to get past
    validation, so the route's own code meets the hostile part."""
    schema = resolve(doc, schema)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {name: example(doc, prop) for name, prop in schema.get("properties", {}).items()
                if name in schema.get("required", [])}
    if kind == "array":
        return [example(doc, schema["items"])] * schema.get("minItems", 0)
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if schema.get("format") == "date-time":
        return "2026-11-01T10:00:00Z"
    if "pattern" in schema and "0-9a-f" in schema["pattern"]:
        return "a" * 64
    return "x" * max(3, schema.get("minLength", 0))


def string_fields(doc: dict[str, Any], schema: dict[str, Any],
                  path: str = "") -> Iterator[tuple[str, Any]]:
    """``(field path, minimal body with that field set to a marker)`` for every string field
    of a JSON body, nested objects and array items included."""
    schema = resolve(doc, schema)
    if schema.get("type") == "object":
        for name, prop in schema.get("properties", {}).items():
            for sub, value in string_fields(doc, prop, f"{path}.{name}" if path else name):
                base = example(doc, schema)
                base[name] = value
                yield sub, base
    elif schema.get("type") == "array":
        for sub, value in string_fields(doc, schema["items"], f"{path}.0"):
            yield sub, [value]
    elif schema.get("type") == "string" and "enum" not in schema \
            and schema.get("format") != "date-time":
        yield path, MARK


MARK = object()


def put(value: Any, text: str) -> Any:
    if value is MARK:
        return text
    if isinstance(value, dict):
        return {k: put(v, text) for k, v in value.items()}
    if isinstance(value, list):
        return [put(v, text) for v in value]
    return value


class Operation:
    def __init__(self, doc: dict[str, Any], method: str, path: str,
                 op: dict[str, Any] | None) -> None:
        self.doc, self.method, self.path, self.op = doc, method, path, op or {}
        self.params = [p for p in self.op.get("parameters", [])]

    def names(self, where: str) -> list[str]:
        found = [p["name"] for p in self.params if p["in"] == where]
        if where == "path" and not found:  # routes outside the document
            found = [part[1:-1] for part in self.path.split("/") if part.startswith("{")]
        return found

    def url(self, hostile: str | None = None) -> str:
        out = self.path
        for name in self.names("path"):
            out = out.replace("{" + name + "}", "x%00y" if name == hostile else f"p-{uid()}")
        return out

    def query(self, hostile: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in self.params:
            if p["in"] != "query":
                continue
            if p["name"] == hostile:
                out[p["name"]] = "x\x00y"
            elif p.get("required"):
                out[p["name"]] = example(self.doc, p["schema"])
        return out

    def body(self) -> dict[str, Any]:
        content = self.op.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            return {"json": example(self.doc, content["application/json"]["schema"])}
        if "multipart/form-data" in content:
            return {"files": {"file": ("notes.txt", b"plain words", "text/plain")}}
        if "application/x-www-form-urlencoded" in content:
            return {"data": {"reason": "x"}}
        return {}

    def json_schema(self) -> dict[str, Any] | None:
        content = self.op.get("requestBody", {}).get("content", {})
        return content.get("application/json", {}).get("schema")

    def __repr__(self) -> str:
        return f"{self.method} {self.path}"


def operations(app: Any) -> list[Operation]:
    """Every operation of the OpenAPI document, and every route outside it."""
    doc = app.openapi()
    ops = [Operation(doc, method.upper(), path, op)
           for path, item in doc["paths"].items() for method, op in item.items()]
    documented = {(o.method, o.path) for o in ops}
    for route in app.routes:
        if not hasattr(route, "path"):  # an included router: its routes are all documented
            continue
        if isinstance(route, Mount):
            ops.append(Operation(doc, "GET", route.path + "/{path}", None))
            continue
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            if method != "HEAD" and (method, route.path) not in documented:
                ops.append(Operation(doc, method, route.path, None))
    return ops


def refusal(response: Any) -> str | None:
    """What is wrong with ``response`` as a refusal: None if it is a 4xx in the error shape."""
    if not 400 <= response.status_code < 500:
        return f"answered {response.status_code}: {response.text[:200]}"
    try:
        body = response.json()
    except ValueError:
        return f"answered {response.status_code} without the error shape: {response.text[:100]}"
    if not (isinstance(body, dict) and ("error" in body or "errors" in body)):
        return f"answered {response.status_code} without the error shape: {body}"
    return None


def problem_fields(response: Any) -> list[str]:
    body = response.json()
    if "errors" in body:  # the SP-API shape: bsm's field and reason are in `message`
        return [e["message"] for e in body["errors"]]
    return [p["field"] for p in body.get("problems", [])]


async def test_every_route_refuses_nul_in_a_path_or_query_parameter_with_a_4xx_naming_it(
    env, gateway_settings
):
    failures: list[str] = []
    async with gateway(gateway_settings) as (app, http):
        ops = operations(app)
        for op in ops:
            hostile = [("path", name) for name in op.names("path")] + \
                      [("query", name) for name in op.names("query")] + [("query", "extra")]
            for where, name in hostile:
                for role in ROLES:
                    headers = g.auth(env, f"{role}-{uid()}", role)
                    if where == "path":
                        url, params = op.url(name), op.query()
                    else:
                        url, params = op.url(), {**op.query(name), **(
                            {"extra": "x\x00y"} if name == "extra" else {})}
                    r = await http.request(op.method, url, params=params, headers=headers,
                                           **op.body())
                    wrong = refusal(r)
                    if wrong is None and op.op and r.status_code != 422:
                        wrong = f"answered {r.status_code}, not 422: {r.text[:200]}"
                    if wrong is None and op.op and not any(
                            f"{where}.{name}" in f for f in problem_fields(r)):
                        wrong = f"does not name {where}.{name}: {r.text[:200]}"
                    if wrong:
                        failures.append(f"{op} ({role}, U+0000 in {where} `{name}`) {wrong}")
                        break
    assert len(ops) > 40 and {"/app/{path}", "/v1/messages", "/messaging/v1/orders/"
                              "{amazonOrderId}/messages/invoice"} <= {o.path for o in ops}
    assert not failures, "\n".join(failures)


async def test_every_string_field_of_every_json_body_refuses_nul_and_lone_surrogates(
    env, gateway_settings
):
    failures: list[str] = []
    checked = 0
    async with gateway(gateway_settings) as (app, http):
        for op in operations(app):
            schema = op.json_schema()
            if schema is None:
                continue
            for field, body in string_fields(op.doc, schema):
                for bad, name in ((NUL, "U+0000"), ("\ud800", "U+D800")):
                    checked += 1
                    raw = json.dumps(put(body, f"ab{bad}c")).encode()  # \u0000, \ud800 escapes
                    r = await http.request(
                        op.method, op.url(), content=raw, params=op.query(),
                        headers={**g.auth(env, f"seller-{uid()}"),
                                 "Content-Type": "application/json"})
                    wrong = refusal(r)
                    if wrong is None and r.status_code != 422:
                        wrong = f"answered {r.status_code}"
                    if wrong is None and not any(field in f for f in problem_fields(r)):
                        wrong = f"does not name `{field}`: {r.text[:200]}"
                    if wrong is None and name not in r.text:
                        wrong = f"does not name the character {name}: {r.text[:200]}"
                    if wrong:
                        failures.append(f"{op} `{field}` with {name}: {wrong}")
    assert checked > 40
    assert not failures, "\n".join(failures)


# -- messages ---------------------------------------------------------------------------------

async def submitted_texts(kafka: Any, prefix: str, marker: str, expect: int) -> list[Any]:
    """The `MessageSubmitted` events whose text holds ``marker`` (waiting for ``expect`` of
    them, then a moment more for unwanted extras)."""
    return await kafka.collect(prefix + "bsm.messages.submitted",
                               lambda e: marker in (e["data"].get("text") or ""),
                               count=expect, settle=1.5)


def stored_pdf(settings: Any, size: int) -> dict[str, str]:
    """A file in the gateway's blob store as an upload leaves it (sparse: the door judges the
    stored size, not the bytes), referenced as an attachment."""
    sha = hashlib.sha256(uid().encode()).hexdigest()
    path = blob_path(settings.blob_dir, sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(b"%PDF-1.7\n")
        f.truncate(size)
    return {"sha256": sha, "filename": f"{sha[:8]}.pdf"}


@asynccontextmanager
async def replying_buyer(kafka: Any, env: Any, prefix: str, settings: Any,
                         uploads: Any = ()) -> AsyncIterator[tuple[Any, AsyncClient, Any, dict]]:
    """The gateway, and a buyer who can answer a delivered message: ``(app, http, headers,
    the fields of a reply)``; ``uploads``: stored files (:func:`stored_pdf`) the buyer
    uploaded."""
    async with gateway(settings) as (app, http):
        a = await seed(kafka, env, prefix)
        await g.uploaded_by(app, a["buyer"], *{f["sha256"] for f in uploads})
        buyer = g.auth(env, a["buyer"], "buyer")
        await g.eventually(lambda: http.get(f"/v1/messages/{a['msg']}", headers=buyer),
                           lambda r: r.status_code == 200)
        yield app, http, buyer, {"in_reply_to": a["msg"]}


async def test_a_message_with_nul_in_its_html_is_refused_with_422_before_it_is_published(
    kafka, env, prefix, gateway_settings
):
    marker = uid()
    async with replying_buyer(kafka, env, prefix, gateway_settings) as (app, http, buyer, reply):
        nul = await http.post("/v1/messages", headers=buyer, json={
            **reply, "text": f"nul {marker}", "html": "<p>a\x00b</p>"})
        surrogate = await http.post(
            "/v1/messages", headers={**buyer, "Content-Type": "application/json"},
            content='{"in_reply_to": "%s", "text": "surrogate %s \\udc00"}'
            % (reply["in_reply_to"], marker))
        fine = await http.post("/v1/messages", headers=buyer, json={
            **reply, "text": f"fine {marker}", "html": "<p>ab</p>"})
        stored = await app.state.runtime.pool.fetch(
            f"SELECT text FROM {gateway_settings.db_schema}.messages WHERE text LIKE $1",
            f"%{marker}%")
    [event] = await submitted_texts(kafka, prefix, marker, 1)
    assert nul.status_code == 422, nul.text
    assert nul.json()["error"] == "unstorable_text"
    assert nul.json()["problems"] == [{"field": "html",
                                       "problem": "contains U+0000 (NUL) at character 4"}]
    assert "html" in nul.json()["detail"] and "U+0000" in nul.json()["detail"]
    assert surrogate.status_code == 422 and "U+DC00" in surrogate.json()["detail"]
    assert fine.status_code == 202
    assert event["data"]["message_id"] == fine.json()["message_id"]  # only the fine one
    assert [r["text"] for r in stored] == [f"fine {marker}"]


async def test_a_subject_with_cr_lf_is_one_line_in_the_event_and_in_the_mailbox(
    kafka, env, prefix, gateway_settings
):
    async with replying_buyer(kafka, env, prefix, gateway_settings) as (app, http, buyer, reply):
        sent = await http.post("/v1/messages", headers=buyer, json={
            **reply, "text": "hello",
            "subject": "Chair\r\nBcc: everyone@example.com\tnow"})
        shown = await http.get(f"/v1/messages/{sent.json()['message_id']}", headers=buyer)
    [event] = await kafka.collect(prefix + "bsm.messages.submitted",
                                  lambda e: e["data"]["message_id"] == sent.json()["message_id"])
    assert sent.status_code == 202
    assert event["data"]["subject"] == "Chair Bcc: everyone@example.com now"
    assert shown.json()["subject"] == "Chair Bcc: everyone@example.com now"


async def test_a_message_over_the_body_or_attachment_limits_is_refused_naming_limit_and_size(
    kafka, env, prefix, gateway_settings
):
    big = [stored_pdf(gateway_settings, 6 * 2**20) for _ in range(2)]
    marker = uid()
    async with replying_buyer(kafka, env, prefix, gateway_settings,
                              uploads=big) as (app, http, buyer, reply):
        # About 180,000 + 30,000 bytes: each part alone is within any per-field limit.
        text, html = f"{marker} " + "é" * 90_000, "<p>" + "x" * 30_000
        size = len(text.encode()) + len(html.encode())
        body = await http.post("/v1/messages", headers=buyer, json={
            **reply, "text": text, "html": html})
        files = await http.post("/v1/messages", headers=buyer, json={
            **reply, "text": f"{marker} files", "attachments": big})
        many = await http.post("/v1/messages", headers=buyer, json={
            **reply, "text": f"{marker} many", "attachments": [big[0]] * (MAX_ATTACHMENTS + 1)})
    published = await submitted_texts(kafka, prefix, marker, 0)
    assert body.status_code == 413 and body.json()["error"] == "body_too_large"
    assert body.json()["limit"] == MAX_BODY_BYTES and body.json()["size"] == size
    assert f"{MAX_BODY_BYTES:,}" in body.json()["detail"] and f"{size:,}" in body.json()["detail"]
    assert files.status_code == 413 and files.json()["error"] == "attachments_too_large"
    assert (files.json()["limit"], files.json()["size"]) == (MAX_ATTACHMENT_BYTES, 12 * 2**20)
    assert many.status_code == 422
    [problem] = many.json()["problems"]
    assert problem["field"] == "attachments"
    assert str(MAX_ATTACHMENTS) in problem["problem"] and str(MAX_ATTACHMENTS + 1) in \
        problem["problem"]
    assert published == []


async def test_a_body_counts_as_an_event_spells_it_so_control_characters_cannot_overflow_kafka(
    kafka, env, prefix, gateway_settings
):
    """190,000 characters, but JSON spells each control character in six bytes: 1.1 MB in the
    event, more than a Kafka record holds. The body limit counts what the event will carry."""
    marker = uid()
    async with replying_buyer(kafka, env, prefix, gateway_settings) as (app, http, buyer, reply):
        escaped = await http.post("/v1/messages", headers=buyer, json={
            **reply, "text": f"{marker} " + "\x01" * 95_000, "html": "\x01" * 95_000})
    assert escaped.status_code == 413, escaped.text
    body = escaped.json()
    assert body["error"] == "body_too_large" and f"{MAX_BODY_BYTES:,}" in body["detail"]
    assert body_bytes(f"{marker} " + "\x01" * 95_000, "\x01" * 95_000) > MAX_EVENT_BYTES
    assert await submitted_texts(kafka, prefix, marker, 0) == []


async def test_attachments_alone_make_a_message(kafka, env, prefix, gateway_settings):
    pdf = stored_pdf(gateway_settings, 1000)
    async with replying_buyer(kafka, env, prefix, gateway_settings,
                              uploads=[pdf]) as (app, http, buyer, reply):
        sent = await http.post("/v1/messages", headers=buyer,
                               json={**reply, "attachments": [pdf]})
    assert sent.status_code == 202, sent.text
    [event] = await kafka.collect(prefix + "bsm.messages.submitted",
                                  lambda e: e["data"]["message_id"] == sent.json()["message_id"])
    assert [a["sha256"] for a in event["data"]["attachments"]] == [pdf["sha256"]]


class Counted:
    """A request body of ``chunks`` MiB that counts how much of it the server pulled."""

    def __init__(self, chunks: int, head: bytes = b"") -> None:
        self.chunks, self.head, self.pulled = chunks, head, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for n in range(self.chunks):
            self.pulled += 1
            yield (self.head if n == 0 else b"") + b" " * 2**20


async def test_request_bodies_larger_than_any_valid_request_are_refused_before_being_read(
    env, gateway_settings
):
    seller = g.auth(env, f"seller-{uid()}")
    upload_limit = gateway_settings.max_attachment_bytes
    async with gateway(gateway_settings) as (app, http):
        declared = Counted(30, b'{"text": "')
        thirty_mb = await http.post("/v1/messages", content=declared, headers={
            **seller, "Content-Type": "application/json", "Content-Length": str(30 * 2**20)})
        chunked = Counted(30, b'{"text": "')
        streamed = await http.post("/v1/messages", content=chunked, headers={
            **seller, "Content-Type": "application/json"})
        sp = await http.post("/messaging/v1/orders/o-1/messages/invoice", content=Counted(30),
                             headers={**seller, "Content-Type": "application/json",
                                      "Content-Length": str(30 * 2**20)})
        upload = Counted(30)
        big_upload = await http.post("/v1/attachments", content=upload, headers={
            **seller, "Content-Type": "multipart/form-data; boundary=XX",
            "Content-Length": str(30 * 2**20)})
        just_over = await http.post("/v1/attachments", headers=seller, files={
            "file": ("a.txt", b"a" * (upload_limit + 1), "text/plain")})
        at_limit = await http.post("/v1/attachments", headers=seller, files={
            "file": ("a.txt", b"a" * upload_limit, "text/plain")})
    assert thirty_mb.status_code == 413 and thirty_mb.json()["error"] == "request_too_large"
    assert declared.pulled <= 1, "a declared 30 MB body is refused before it is read"
    assert thirty_mb.json()["size"] == 30 * 2**20
    assert f"{30 * 2**20:,}" in thirty_mb.json()["detail"]
    assert f"{thirty_mb.json()['limit']:,}" in thirty_mb.json()["detail"]
    assert streamed.status_code == 413 and chunked.pulled <= 3, "cut off once over the limit"
    assert sp.status_code == 413 and sp.json()["errors"][0]["code"] == "RequestEntityTooLarge"
    assert big_upload.status_code == 413 and upload.pulled <= 1
    assert big_upload.json()["error"] == "request_too_large"
    assert just_over.status_code == 413 and just_over.json()["error"] == "attachment_too_large"
    assert f"{upload_limit:,}" in just_over.json()["detail"]
    assert at_limit.status_code == 201


# -- file names -------------------------------------------------------------------------------

def multipart(disposition: bytes, content: bytes = b"plain words") -> bytes:
    return (b"--XX\r\nContent-Disposition: form-data; name=\"file\"; " + disposition +
            b"\r\nContent-Type: text/plain\r\n\r\n" + content + b"\r\n--XX--\r\n")


def download_name(header: str) -> str:
    """The name a browser saves a download as: ``filename*`` (RFC 6266 §4.3 prefers it),
    decoded as RFC 5987 says."""
    [ext_value] = re.findall(r"filename\*=([^;\s]+)", header)
    charset, _, encoded = ext_value.split("'", 2)
    assert charset.lower() == "utf-8"
    return unquote(encoded, encoding="utf-8", errors="strict")


async def test_hostile_file_names_are_stored_and_served_cleaned(
    kafka, env, prefix, gateway_settings
):
    long_name = "x" * 1000 + ".pdf"
    async with gateway(gateway_settings) as (app, http):
        a = await seed(kafka, env, prefix)
        buyer = g.auth(env, a["buyer"], "buyer")
        form = {**buyer, "Content-Type": "multipart/form-data; boundary=XX"}
        uploads = {}
        for label, disposition in {
            "encoded": b'filename="=?utf-8?q?invoice=0D=0ABcc:_x?=.txt"',
            "path": b'filename="../../etc/passwd"',
            "long": b'filename="' + long_name.encode() + b'"',
            "quotes": 'filename="a\\";b%41 ñ.txt"'.encode(),
        }.items():
            uploads[label] = await http.post("/v1/attachments", headers=form,
                                             content=multipart(disposition))
        nul = await http.post("/v1/attachments", headers=form,
                              content=multipart(b'filename="a\x00b.txt"'))
        await g.eventually(lambda: http.get(f"/v1/messages/{a['msg']}", headers=buyer),
                           lambda r: r.status_code == 200)
        sha = uploads["path"].json()["sha256"]
        hostile = "report\r\nContent-Type: text\r\n\r\n<script>.txt"
        sent = await http.post("/v1/messages", headers=buyer, json={
            "in_reply_to": a["msg"], "text": "see attached",
            "attachments": [{"sha256": sha, "filename": hostile}]})
        mid = sent.json()["message_id"]
        download = await http.get(f"/v1/messages/{mid}/attachments/{sha}", headers=buyer)
        # A row stored before names were cleaned at the door is served safely too.
        await app.state.runtime.pool.execute(
            f"UPDATE {gateway_settings.db_schema}.messages SET attachments = $2 "
            f"WHERE message_id = $1", mid, json.dumps([{
                "sha256": sha, "size": 11, "content_type": "text/plain",
                "filename": 'old\r\nname "ü".txt'}]))
        old = await http.get(f"/v1/messages/{mid}/attachments/{sha}", headers=buyer)
    [event] = await kafka.collect(prefix + "bsm.messages.submitted",
                                  lambda e: e["data"]["message_id"] == mid)
    names = {label: r.json()["filename"] for label, r in uploads.items()}
    assert all(r.status_code == 201 for r in uploads.values()), uploads
    assert names["encoded"] == "invoice Bcc: x.txt"
    assert names["path"] == "passwd"
    assert len(names["long"]) == MAX_FILENAME_CHARS and names["long"].endswith(".pdf")
    assert nul.status_code == 422 and nul.json()["error"] == "unstorable_text"
    assert nul.json()["problems"][0]["field"] == "file.filename"
    cleaned = "report Content-Type: text <script>.txt"
    assert event["data"]["attachments"][0]["filename"] == cleaned
    for response, name in ((download, cleaned), (old, 'old name "ü".txt')):
        header = response.headers["content-disposition"]
        assert response.status_code == 200 and "\r" not in header and "\n" not in header
        assert re.fullmatch(r'attachment; filename="[^"\\%;]+"; filename\*=utf-8\'\'\S+', header)
        assert download_name(header) == name  # filename* carries the exact cleaned name
        header.encode("latin-1")  # a valid HTTP header value


# -- addresses and the SP-API door ---------------------------------------------------------------

async def test_addresses_with_cr_lf_in_settings_or_as_recipient_are_refused(env, gateway_settings):
    seller = f"seller-{uid()}"
    async with gateway(gateway_settings) as (app, http):
        settings = await http.put(f"/v1/sellers/{seller}/settings", headers=g.auth(env, seller),
                                  json={"customer_service_email":
                                        "help@sol.example\r\nBcc: all@example.com"})
        senders = await http.put(f"/v1/sellers/{seller}/settings", headers=g.auth(env, seller),
                                 json={"authorized_senders": ["a@sol.example", "b@sol\n.example"]})
        alias = await http.post("/v1/messages", headers=g.auth(env, seller), json={
            "recipient_alias": "abc@m.example\r\nX: y", "text": "hi"})
    assert settings.status_code == 422
    assert settings.json()["problems"][0]["field"] == "customer_service_email"
    assert "U+000D" in settings.json()["problems"][0]["problem"]
    assert senders.status_code == 422
    assert senders.json()["problems"][0]["field"] == "authorized_senders.1"
    assert alias.status_code == 422
    assert alias.json()["problems"][0]["field"] == "recipient_alias"


async def test_the_sp_api_door_cleans_file_names_and_refuses_oversized_attachments(
    kafka, env, prefix, gateway_settings
):
    shas = [stored_pdf(gateway_settings, size)["sha256"] for size in (1000, 6 * 2**20)]
    async with gateway(gateway_settings) as (app, http):
        a = await seed(kafka, env, prefix)
        await g.uploaded_by(app, a["seller"], *shas)
        amz = {"x-amz-access-token": g.auth(env, a["seller"])["Authorization"].split()[1]}
        base = f"/messaging/v1/orders/{a['order']}"
        actions = await g.eventually(lambda: http.get(base, headers=amz),
                                     lambda r: r.status_code == 200)
        kind = next(n for n in ("confirmCustomizationDetails", "legalDisclosure", "warranty",
                                "invoice", "digitalAccessKey")
                    if n in {x["name"] for x in actions.json()["_links"]["actions"]})
        one = {"uploadDestinationId": shas[0], "fileName": "terms\r\n=?utf-8?b?w7E=?=.pdf"}
        sent = await http.post(f"{base}/messages/{kind}", headers=amz,
                               json={"text": "Details attached.", "attachments": [one]})
        too_big = await http.post(f"{base}/messages/{kind}", headers=amz, json={
            "text": "Details attached.",
            "attachments": [one] + [{"uploadDestinationId": shas[1], "fileName": "b.pdf"}] * 2})
        nul = await http.post(f"{base}/messages/{kind}", headers=amz,
                              json={"text": "Details\x00 attached.", "attachments": [one]})
    [event] = await kafka.collect(
        prefix + "bsm.messages.submitted",
        lambda e: e["data"]["message_id"] == sent.json()["x-bsm-message-id"])
    assert sent.status_code == 201, sent.text
    assert event["data"]["attachments"][0]["filename"] == "terms ñ.pdf"
    assert too_big.status_code == 413
    [error] = too_big.json()["errors"]
    assert error["code"] == "RequestEntityTooLarge" and error["details"] == "attachments_too_large"
    assert f"{MAX_ATTACHMENT_BYTES:,}" in error["message"]
    assert nul.status_code == 422 and nul.json()["errors"][0]["details"] == "unstorable_text"
    assert "text" in nul.json()["errors"][0]["message"]
