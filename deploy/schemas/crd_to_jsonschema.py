"""Turn one version of a Kubernetes CustomResourceDefinition into a JSON schema file.

    .venv/bin/python deploy/schemas/crd_to_jsonschema.py CRD.yaml VERSION SOURCE > OUT.json

What the API server does with a structural CRD schema, made explicit for an offline validator:

* an object that lists ``properties`` (and neither ``additionalProperties`` nor
  ``x-kubernetes-preserve-unknown-fields``) gets ``additionalProperties: false`` — the server
  prunes unknown fields silently, so a misspelt field would deploy and do nothing;
* ``x-kubernetes-int-or-string`` becomes ``anyOf: [integer, string]``;
* ``nullable: true`` adds ``null`` to the type;
* ``apiVersion`` and ``kind`` must be the CRD's group/version and kind.

The other ``x-kubernetes-*`` keys (CEL rules, list and map types) are left in place: a JSON
schema validator ignores them. See README.md beside this file for where each schema came from.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import yaml


def strict(node: Any) -> Any:
    """``node`` (an OpenAPI v3 schema of a CRD) as a JSON schema, recursively."""
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def convert(crd: dict[str, Any], version: str, source: str) -> dict[str, Any]:
    spec = crd["spec"]
    [served] = [v for v in spec["versions"] if v["name"] == version]
    schema = strict(served["schema"]["openAPIV3Schema"])
    api_version = f"{spec['group']}/{version}"
    schema["properties"]["apiVersion"] = {"const": api_version}
    schema["properties"]["kind"] = {"const": spec["names"]["kind"]}
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata",
                                 "spec"})
    return {"$schema": "http://json-schema.org/draft-07/schema#",
            "title": f"{spec['names']['kind']} {api_version}",
            "$comment": f"From the CRD {crd['metadata']['name']} ({source}); converted by "
                        "deploy/schemas/crd_to_jsonschema.py.",
            **schema}


def main(argv: list[str]) -> None:
    path, version, source = argv
    with open(path, encoding="utf-8") as fh:
        crd = yaml.safe_load(fh)
    json.dump(convert(crd, version, source), sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
