"""The mail sink's lookup by Message-ID: newest first, by the time in the file names."""

import os

from bsm_devstack.mailsink import find_by_message_id, store


def mail(message_id: str, text: str) -> bytes:
    return f"Message-ID: {message_id}\r\nSubject: x\r\n\r\n{text}\r\n".encode()


def test_the_newest_mail_with_the_message_id_is_found_without_looking_at_file_times(tmp_path):
    old = store(tmp_path, mail("<m1@marketplace.example>", "first"))
    store(tmp_path, mail("<other@marketplace.example>", "other"))
    new = store(tmp_path, mail("<M1@marketplace.example>", "again"))
    os.utime(new, (0, 0))  # a file time that lies: the name's time decides
    assert new.name > old.name
    assert find_by_message_id(tmp_path, "<m1@marketplace.example>") == new
    assert find_by_message_id(tmp_path, "<absent@marketplace.example>") is None


def test_files_that_are_not_stored_mails_are_left_alone(tmp_path):
    (tmp_path / "zzz.tmp").write_bytes(mail("<m2@marketplace.example>", "half-written"))
    assert find_by_message_id(tmp_path, "<m2@marketplace.example>") is None
