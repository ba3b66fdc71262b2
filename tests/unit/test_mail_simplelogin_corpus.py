"""Raw mails of another project (../shared/corpus/simplelogin-emls, read in place, never copied
here) through the door's parser and scrubber: none may crash it, and every one is counted."""

from bsm_alias import mail
from tests.mail_support import SIMPLELOGIN


def test_every_simplelogin_mail_parses_and_loses_its_from_address_when_scrubbed():
    files = sorted(SIMPLELOGIN.glob("*.eml")) if SIMPLELOGIN.is_dir() else []
    processed = 0
    for path in files:
        parsed = mail.parse(path.read_bytes())
        senders = {a.lower(): "x" * 16 + "@marketplace.example" for _, a in parsed.header_from}
        for body in (parsed.text, parsed.html, parsed.subject):
            if body:
                scrubbed = mail.scrub(body, senders, {})
                assert not any(s in scrubbed.lower() for s in senders), path.name
        processed += 1
    assert processed == len(files)
    if SIMPLELOGIN.is_dir():
        assert processed >= 20, f"expected the 23 corpus mails, read {processed}"
