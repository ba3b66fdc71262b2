"""The deploy files cannot drift from what the services read (offline, no cluster, no Docker).

* ``docker-compose.yml`` is valid under the compose specification (``check-jsonschema``'s
  vendored schema); the Kubernetes manifests under Kubernetes' schemas (``kubernetes-validate``,
  strict: an unknown field is an error); the Strimzi ``KafkaTopic`` and KEDA ``ScaledObject``
  resources under their CRDs' schemas kept in ``deploy/schemas`` (README there: source, licence).
* The topics, partitions and consumer groups in ``deploy/`` are those of ``bsm_shared.topics``,
  and each ScaledObject watches exactly the topics its service consumes (read from the services'
  own composition roots).
* Every environment variable a manifest or the compose file sets is one the service reads (its
  settings classes, as pydantic-settings resolves them), every required setting is set, and no
  setting keeps a default that only works on one machine (``127.0.0.1``).
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic_settings import BaseSettings, EnvSettingsSource

from bsm_alias.settings import AliasSettings
from bsm_delivery.settings import DeliverySettings
from bsm_devstack.keys import ensure_secrets
from bsm_gateway.metrics_client import MetricsClientSettings
from bsm_gateway.settings import GatewaySettings
from bsm_metrics.settings import MetricsSettings
from bsm_policy.settings import PolicySettings
from bsm_shared.runtime.links import LinkSettings
from bsm_shared.topics import DLQ_PARTITIONS, PARTITIONS, Group, Topic, TopicNames

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = ROOT / "deploy" / "schemas"
COMPOSE = ROOT / "docker-compose.yml"
#: The oldest Kubernetes the manifests support, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())

#: Every settings class each service builds from the environment (its ``__main__`` builds the
#: first; delivery's mail composer reads the link settings, the gateway's proxy the client's).
SETTINGS: dict[str, tuple[type[BaseSettings], ...]] = {
    "alias": (AliasSettings,),
    "policy": (PolicySettings,),
    "delivery": (DeliverySettings, LinkSettings),
    "metrics": (MetricsSettings,),
    "gateway": (GatewaySettings, MetricsClientSettings),
}
#: The custom resources and their schemas (deploy/schemas/README.md).
CRD_SCHEMAS = {
    ("kafka.strimzi.io/v1", "KafkaTopic"): SCHEMAS / "strimzi-kafkatopic-v1.json",
    ("keda.sh/v1alpha1", "ScaledObject"): SCHEMAS / "keda-scaledobject-v1alpha1.json",
}


# --------------------------------------------------------------------------------------------
# reading the files
# --------------------------------------------------------------------------------------------


@functools.cache
def resources() -> tuple[tuple[str, dict[str, Any]], ...]:
    """Every resource of every manifest: (file name, resource)."""
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        with open(path, encoding="utf-8") as fh:
            out += [(path.name, doc) for doc in yaml.safe_load_all(fh) if doc]
    return tuple(out)


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in resources() if doc["kind"] == kind]


def service_of(command: list[str]) -> str:
    """``["bsm_alias"]`` (the image runs ``python -m <module>``) → ``alias``."""
    [module] = command
    assert module.startswith("bsm_"), command
    return module.removeprefix("bsm_")


@functools.cache
def deployments() -> dict[str, dict[str, Any]]:
    """Service → its Deployment's pod spec and container."""
    out = {}
    for d in of_kind("Deployment"):
        pod = d["spec"]["template"]["spec"]
        [container] = pod["containers"]
        out[service_of(container["args"])] = {
            "pod": pod, "container": container, "name": d["metadata"]["name"],
            "labels": d["spec"]["template"]["metadata"]["labels"]}
    return out


def k8s_env(service: str) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in deployments()[service]["container"].get("env", [])}


@functools.cache
def compose() -> dict[str, Any]:
    with open(COMPOSE, encoding="utf-8") as fh:
        return yaml.safe_load(fh)  # resolves the anchors and merge keys as compose does


def compose_services() -> dict[str, dict[str, Any]]:
    return {service_of(s["command"]): s for s in compose()["services"].values()
            if s.get("command")}


@functools.cache
def compose_env_file_keys() -> frozenset[str]:
    """The keys of ``.stack/compose.env`` (``python -m bsm_devstack keys`` writes the stack's
    secrets and ``BSM_TRUSTED_KEYS`` there): what every compose service gets besides
    ``environment``."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        secrets, _ = ensure_secrets(Path(tmp) / "secrets.env")
    return frozenset({*secrets, "BSM_TRUSTED_KEYS"})


def deployment_envs() -> Iterator[tuple[str, str, set[str]]]:
    """(where, service, the variables set) for every Deployment and compose service."""
    for service in deployments():
        yield "deploy/k8s", service, set(k8s_env(service))
    for service, spec in compose_services().items():
        yield "docker-compose.yml", service, set(spec.get("environment", {})) \
            | set(compose_env_file_keys())


# --------------------------------------------------------------------------------------------
# what the services read
# --------------------------------------------------------------------------------------------


def env_names(cls: type[BaseSettings]) -> dict[str, set[str]]:
    """Field → every environment variable pydantic-settings reads it from (upper case: the
    names are matched case-insensitively)."""
    source = EnvSettingsSource(cls)
    return {name: {env.upper() for _, env, _ in source._extract_field_info(field, name)}
            for name, field in cls.model_fields.items()}


def read_by(service: str) -> set[str]:
    return {env for cls in SETTINGS[service] for names in env_names(cls).values()
            for env in names}


def test_env_names_follow_pydantic_settings_prefixes_and_aliases():
    names = env_names(DeliverySettings)
    assert "BSM_DELIVERY_PII_KEY" in names["pii_key"]
    assert {"BSM_DELIVERY_SMTP_RELAY", "BSM_SMTP_RELAY"} <= names["smtp_relay"]
    assert "KAFKA_BOOTSTRAP_SERVERS" in names["kafka_bootstrap_servers"]
    assert "BSM_ALIAS_PII_KEY" not in read_by("delivery")


@functools.cache
def consumed() -> dict[str, tuple[str, frozenset[str]]]:
    """Service → (consumer group, input topics), from each service's own composition root:
    the app is built (nothing connects) and the runtime it makes is recorded."""
    import os

    from bsm_shared.runtime.service import ServiceRuntime

    seen: list[ServiceRuntime] = []
    real_init = ServiceRuntime.__init__

    def recording_init(self, **kwargs):  # noqa: ANN001, ANN003
        real_init(self, **kwargs)
        seen.append(self)

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        secrets, _ = ensure_secrets(Path(tmp) / "secrets.env")
    saved = dict(os.environ)
    os.environ.update({**secrets, "BSM_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    ServiceRuntime.__init__ = recording_init  # type: ignore[method-assign]
    try:
        from bsm_alias.app import create_app as alias_app
        from bsm_delivery.app import create_app as delivery_app
        from bsm_gateway.app import create_app as gateway_app
        from bsm_metrics.app import create_app as metrics_app
        from bsm_policy.app import create_app as policy_app

        alias_app(AliasSettings())  # type: ignore[call-arg]
        policy_app(PolicySettings())  # type: ignore[call-arg]
        delivery_app(DeliverySettings())  # type: ignore[call-arg]
        metrics_app(MetricsSettings())  # type: ignore[call-arg]
        gateway_app(GatewaySettings())  # type: ignore[call-arg]
    finally:
        ServiceRuntime.__init__ = real_init  # type: ignore[method-assign]
        os.environ.clear()
        os.environ.update(saved)
    return {rt.name: (str(rt.subscriber.group_id), frozenset(rt.subscriber.topic_names))
            for rt in seen}


def test_every_service_consumes_in_its_own_group():
    assert {s: g for s, (g, _) in consumed().items()} == {
        "alias": Group.ALIAS, "policy": Group.POLICY, "delivery": Group.DELIVERY,
        "metrics": Group.METRICS, "gateway": Group.GATEWAY}


# --------------------------------------------------------------------------------------------
# schemas
# --------------------------------------------------------------------------------------------


def test_docker_compose_is_valid_under_the_compose_specification():
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(COMPOSE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_kinds_are_valid_under_kubernetes_schemas(version):
    builtin = [(name, doc) for name, doc in resources()
               if (doc["apiVersion"], doc["kind"]) not in CRD_SCHEMAS]
    assert {doc["kind"] for _, doc in builtin} >= {"Deployment", "Service"}
    failures = []
    for name, doc in builtin:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            continue  # neither Kubernetes' nor ours: the next test names it
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{name} {doc['kind']}/{doc['metadata']['name']}: "
                            f"{'.'.join(map(str, exc.path))}: {exc.message}")
    assert not failures, "\n".join(failures)


def test_every_resource_is_a_kubernetes_kind_or_a_custom_resource_with_a_schema_here():
    unknown = set()
    for _, doc in resources():
        key = (doc["apiVersion"], doc["kind"])
        if key in CRD_SCHEMAS:
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[0], strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            unknown.add(key)
    assert not unknown, f"no schema for {sorted(unknown)}: add its CRD's to deploy/schemas"


@pytest.mark.parametrize("key", sorted(CRD_SCHEMAS), ids=lambda k: k[1])
def test_custom_resources_are_valid_under_their_crd_schemas(key):
    schema = json.loads(CRD_SCHEMAS[key].read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    docs = [doc for _, doc in resources() if doc["kind"] == key[1]]
    assert docs, f"no {key[1]} in deploy/k8s"
    failures = [f"{doc['kind']}/{doc['metadata']['name']}: {e.json_path}: {e.message}"
                for doc in docs for e in validator.iter_errors(doc)]
    assert not failures, "\n".join(failures)


def test_the_crd_schemas_refuse_a_misspelt_field_and_an_outdated_api_version():
    """The stored schemas are strict: the API server would prune an unknown field silently."""
    schema = json.loads(CRD_SCHEMAS[("kafka.strimzi.io/v1", "KafkaTopic")].read_text())
    good = {"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic",
            "metadata": {"name": "t"}, "spec": {"partitions": 3, "replicas": 3}}
    jsonschema.validate(good, schema)
    for bad in ({**good, "spec": {"partition": 3}},
                {**good, "apiVersion": "kafka.strimzi.io/v1beta2"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


# --------------------------------------------------------------------------------------------
# topics, partitions, consumer groups
# --------------------------------------------------------------------------------------------


def test_kafka_topics_are_the_topics_of_bsm_shared_with_their_partitions():
    declared = {t["spec"]["topicName"]: t["spec"]["partitions"] for t in of_kind("KafkaTopic")}
    assert declared == TopicNames().all_topics()


def test_kafka_topics_keep_the_record_forever_and_are_never_compacted():
    for t in of_kind("KafkaTopic"):
        assert t["spec"]["config"]["retention.ms"] == "-1", t["metadata"]["name"]
        assert t["spec"]["config"]["cleanup.policy"] == "delete", t["metadata"]["name"]


def test_each_scaled_object_watches_its_services_group_on_every_topic_it_consumes():
    for so in of_kind("ScaledObject"):
        target = so["spec"]["scaleTargetRef"]["name"]
        [service] = [s for s, d in deployments().items() if d["name"] == target]
        group, inputs = consumed()[service]
        triggers = so["spec"]["triggers"]
        assert {t["type"] for t in triggers} == {"kafka"}, target
        assert {t["metadata"]["consumerGroup"] for t in triggers} == {group}, target
        watched = [t["metadata"]["topic"] for t in triggers]
        assert sorted(watched) == sorted(inputs), f"{target} scales on {watched}"
        bootstrap = k8s_env(service)["KAFKA_BOOTSTRAP_SERVERS"]["value"]
        assert {t["metadata"]["bootstrapServers"] for t in triggers} == {bootstrap}, target


def test_each_scaled_object_stops_at_its_smallest_input_topics_partition_count():
    by_name = {t.value: t for t in Topic}
    for so in of_kind("ScaledObject"):
        target = so["spec"]["scaleTargetRef"]["name"]
        [service] = [s for s, d in deployments().items() if d["name"] == target]
        smallest = min(PARTITIONS[by_name[t]] for t in consumed()[service][1])
        assert so["spec"]["maxReplicaCount"] == smallest, target


def test_every_consuming_service_but_the_gateway_scales_on_lag():
    scaled = {so["spec"]["scaleTargetRef"]["name"] for so in of_kind("ScaledObject")}
    assert scaled == {deployments()[s]["name"] for s in consumed() if s != "gateway"}


def test_dead_letter_topics_have_the_partitions_of_bsm_shared():
    dlqs = [t for t in of_kind("KafkaTopic") if t["spec"]["topicName"].endswith(".dlq")]
    assert dlqs and {t["spec"]["partitions"] for t in dlqs} == {DLQ_PARTITIONS}


# --------------------------------------------------------------------------------------------
# environment variables
# --------------------------------------------------------------------------------------------


def test_every_service_is_deployed_in_both_files():
    assert set(deployments()) == set(SETTINGS) == set(compose_services())


@pytest.mark.parametrize("where", ["deploy/k8s", "docker-compose.yml"])
def test_every_variable_a_deployment_sets_is_one_its_service_reads(where):
    unread = {f"{service}: {name}" for w, service, names in deployment_envs() if w == where
              for name in names - read_by(service)
              if not (where == "docker-compose.yml" and name in compose_env_file_keys())}
    assert not unread, f"set in {where} but read by no settings class: {sorted(unread)}"


@pytest.mark.parametrize("where", ["deploy/k8s", "docker-compose.yml"])
def test_every_required_setting_is_set(where):
    missing = []
    for w, service, names in deployment_envs():
        if w != where:
            continue
        for cls in SETTINGS[service]:
            for field, env in env_names(cls).items():
                if cls.model_fields[field].is_required() and not env & names:
                    missing.append(f"{service}: {cls.__name__}.{field} ({sorted(env)[0]})")
    assert not missing, f"required but not set in {where}: {missing}"


@pytest.mark.parametrize("where", ["deploy/k8s", "docker-compose.yml"])
def test_no_setting_keeps_a_loopback_default(where):
    """A default of ``127.0.0.1`` is the local stack's address (Kafka, the relay, the metrics
    service) or listens where nothing outside the container reaches it."""
    kept = []
    for w, service, names in deployment_envs():
        if w != where:
            continue
        for cls in SETTINGS[service]:
            for field, env in env_names(cls).items():
                default = cls.model_fields[field].default
                if isinstance(default, str) and "127.0.0.1" in default and not env & names:
                    kept.append(f"{service}: {field} (default {default})")
    assert not kept, f"{where} leaves loopback defaults: {kept}"


def value(where: str, service: str, name: str) -> str | None:
    if where == "docker-compose.yml":
        return compose_services()[service].get("environment", {}).get(name)
    return k8s_env(service).get(name, {}).get("value")


#: Each door: its service, the variable naming where it listens, and how to read the port.
DOORS = {
    "mail door": ("alias", "BSM_ALIAS_SMTP_INBOUND"),
    "gateway API": ("gateway", "BSM_GATEWAY_HTTP_HOST"),
    "metrics API": ("metrics", "BSM_METRICS_HTTP_HOST"),
}


def door_address(service: str, variable: str, where: str) -> tuple[str | None, int]:
    """(host, port) the door listens on in that deployment."""
    if variable.endswith("_SMTP_INBOUND"):
        host, _, port = (value(where, service, variable) or ":0").rpartition(":")
        return host, int(port)
    settings = SETTINGS[service][0]
    port_var = variable.replace("_HOST", "_PORT")
    port = value(where, service, port_var) or settings.model_fields["http_port"].default
    return value(where, service, variable), int(port)


@pytest.mark.parametrize("door", sorted(DOORS))
def test_each_door_listens_on_every_interface_at_the_port_the_deployment_publishes(door):
    service, variable = DOORS[door]
    for where in ("deploy/k8s", "docker-compose.yml"):
        host, port = door_address(service, variable, where)
        assert host == "0.0.0.0", f"{where}: the {door} listens on {host!r}"
        if where == "deploy/k8s":
            published = {p["containerPort"] for p in
                         deployments()[service]["container"].get("ports", [])}
            labels = deployments()[service]["labels"].items()
            routed = {p.get("targetPort", p["port"]) for s in of_kind("Service")
                      if s["spec"]["selector"].items() <= labels for p in s["spec"]["ports"]}
            assert port in published, f"{where}: the {door}'s port {port} is not a containerPort"
            assert port in routed, f"{where}: no Service routes to the {door}'s port {port}"
        else:
            inside = {int(str(p).rpartition(":")[2]) for p in
                      compose_services()[service].get("ports", [])}
            assert port in inside, f"{where}: the {door}'s port {port} is not published"


def test_the_services_sharing_attachments_mount_one_blob_store():
    """The mail door stores attachments, delivery relays them and the gateway serves them: one
    store, by sha256 (README "Deploying bsm")."""
    sharing = ("alias", "delivery", "gateway")
    claims = set()
    for service in sharing:
        blob_dir = value("deploy/k8s", service, "BSM_BLOB_DIR")
        assert blob_dir, f"{service}: BSM_BLOB_DIR not set"
        pod, container = deployments()[service]["pod"], deployments()[service]["container"]
        [mount] = [m for m in container.get("volumeMounts", []) if m["mountPath"] == blob_dir]
        [volume] = [v for v in pod.get("volumes", []) if v["name"] == mount["name"]]
        claims.add(volume["persistentVolumeClaim"]["claimName"])
        compose_blob = value("docker-compose.yml", service, "BSM_BLOB_DIR")
        assert any(str(v).endswith(f":{compose_blob}")
                   for v in compose_services()[service].get("volumes", [])), service
    assert len(claims) == 1, f"{sharing} mount different claims: {claims}"
    [claim] = [c for c in of_kind("PersistentVolumeClaim")
               if c["metadata"]["name"] == claims.pop()]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
