"""Fixed DNS answers from a zone file, for the door's SPF and DKIM checks (adapter).

Production asks the real DNS. The local stack and the tests cannot (no network, and the
documentation domains under ``.example`` publish nothing): ``BSM_ALIAS_DNS_ZONE`` names a zone
file in the standard master-file format (RFC 1035 §5, read by dnspython), and the door then
answers every SPF and DKIM lookup from it, and only from it — a name the file does not hold
has no records, exactly like a domain that publishes none. Wildcards (``*.example.``) answer
for every name below them that the file does not list, as in DNS (RFC 4592, simplified: the
nearest wildcard wins).

The answers have the shapes pyspf's own lookup gives (``TXT``: a list of byte strings per
record; ``A``/``AAAA``/``PTR``: text; ``MX``: ``(preference, host)``), so the same function
serves pyspf (``spf_checker(lookup=…)``) and dkimpy (``dkim_checker(lookup=…)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

#: The record types the door's checks ask for.
_TYPES = ("TXT", "A", "AAAA", "MX", "PTR")


def _answer(rdata: Any, qtype: str) -> Any:
    if qtype == "TXT":
        return list(rdata.strings)
    if qtype == "MX":
        return (rdata.preference, rdata.exchange.to_text(omit_final_dot=True))
    if qtype == "PTR":
        return rdata.target.to_text(omit_final_dot=True)
    return rdata.address


class ZoneLookup:
    """``(name, qtype) -> answers`` from a zone file's records."""

    def __init__(self, text: str) -> None:
        zone = dns.zone.from_text(text, origin=dns.name.root, relativize=False,
                                  check_origin=False)
        self.records: dict[tuple[str, str], list[Any]] = {}
        for name, node in zone.nodes.items():
            owner = name.to_text(omit_final_dot=True).lower()
            for qtype in _TYPES:
                rdataset = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.from_text(qtype))
                if rdataset is not None:
                    self.records[(owner, qtype)] = [_answer(r, qtype) for r in rdataset]

    @classmethod
    def from_file(cls, path: str | Path) -> ZoneLookup:
        return cls(Path(path).read_text(encoding="utf-8"))

    def __call__(self, name: str, qtype: str) -> list[Any]:
        name = name.lower().rstrip(".")
        qtype = qtype.upper()
        found = self.records.get((name, qtype))
        if found is not None:
            return list(found)
        if any(owner == name for owner, _ in self.records):
            return []  # the name exists with other types: no wildcard for it
        labels = name.split(".")
        for i in range(1, len(labels)):
            found = self.records.get(("*." + ".".join(labels[i:]), qtype))
            if found is not None:
                return list(found)
        return []
