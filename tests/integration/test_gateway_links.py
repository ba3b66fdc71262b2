"""The gateway's signed-link pages (issue 11, item 6): only the canonical token verifies, an
absurd expiry is a 400 like any malformed link (never a 500), and a genuine link acts."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta

from bsm_shared.runtime import links
from tests import gateway_support as g
from tests.integration.test_gateway_api import seed


def signed_payload(key: bytes, payload: bytes) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{b64(payload)}.{b64(hmac.new(key, payload, hashlib.sha256).digest())}"


async def test_a_link_token_in_any_but_its_canonical_spelling_or_with_an_absurd_expiry_is_a_400(
    kafka, env, prefix, gateway_settings
):
    key = gateway_settings.link_key_bytes()
    async with g.running_gateway(gateway_settings) as (app, http):
        a = await seed(kafka, env, prefix)
        await g.eventually(lambda: http.get(f"/v1/messages/{a['msg']}",
                                            headers=g.auth(env, a["seller"])),
                           lambda r: r.status_code == 200)
        expires = g.now() + timedelta(days=7)
        # A token whose MAC holds '-' (so the standard alphabet spells it '+').
        token = next(t for t in (links.make_token(key, links.ActionToken(
            "no-response-needed", a["msg"], a["seller"], expires + timedelta(seconds=n)))
            for n in range(500)) if "-" in t.split(".")[1])
        payload, mac = token.split(".")
        variants = [f"{payload}==.{mac}", f"{payload}.{mac}==", f"{payload}.{mac}%3D",
                    f"{payload}.{mac.replace('-', '+')}", f"{payload}.{mac.replace('-', '%2B')}"]
        absurd = [signed_payload(key, f"report|{a['msg']}|{a['seller']}|{e}".encode())
                  for e in ("99999999999999999999", "-1", "1e99", "253402300800")]
        answers = {}
        for t in variants + absurd:
            answers[t] = (await http.get(f"/v1/links/{t}"),
                          await http.post(f"/v1/links/{t}", data={"reason": "x"}))
        page = await http.get(f"/v1/links/{token}")
        done = await http.post(f"/v1/links/{token}")
    for t, responses in answers.items():
        for r in responses:
            assert r.status_code == 400, (t, r.status_code, r.text)
            assert r.json()["error"] == "invalid_link" and "malformed" in r.json()["detail"]
    assert page.status_code == 200 and done.status_code == 200
    marks = await kafka.collect(prefix + "bsm.messages.response-not-needed",
                                lambda e: e["data"]["message_id"] == a["msg"], settle=1.0)
    assert len(marks) == 1 and marks[0]["data"]["party_id"] == a["seller"]
    reports = await kafka.collect(prefix + "bsm.messages.reported",
                                  lambda e: e["data"]["message_id"] == a["msg"], count=0,
                                  settle=0.5)
    assert reports == []
