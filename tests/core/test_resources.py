"""The resource vocabulary: realistic manifests of every kind, a table of invalid specs each naming its bad fields,
documents in and out (YAML, JSON, sizes), secrets, references, and hypothesis round-trips."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from legion.core.errors import InvalidInputError, PayloadTooLargeError
from legion.core.resources import (
    KINDS,
    MAX_FIELD_BYTES,
    SECRET_FIELDS,
    SECRET_MASK,
    Connection,
    ConnectionSpec,
    ModelDeployment,
    ModelPackaging,
    ModelRoute,
    ModelTraining,
    PackagingIntegration,
    Reference,
    Resource,
    ToolchainIntegration,
    check_references,
    find_kind,
    load_documents,
    mask_secrets,
    merge_secrets,
    parse_quantity,
    parse_resource,
    references,
    to_document,
)

MANIFESTS = """\
kind: Connection
id: models-repo
metadata:
  labels: {team: census, env: prod}
spec:
  type: git
  uri: git@github.com:legion-platform/legion-examples.git
  reference: main
  keySecret: |
    -----BEGIN OPENSSH PRIVATE KEY-----
    b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ
    -----END OPENSSH PRIVATE KEY-----
  publicKey: github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl
  description: Example models
  webUILink: https://github.com/legion-platform/legion-examples
---
kind: Connection
id: wine-data
spec:
  type: s3
  uri: s3://legion-data/wine/
  region: eu-central-1
  keyID: AKIAIOSFODNN7EXAMPLE
  keySecret: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
---
kind: Connection
id: registry
spec:
  type: docker
  uri: registry.example.com/legion
  username: robot
  password: s3cret
---
kind: ToolchainIntegration
id: mlflow
spec:
  entrypoint: /opt/legion/bin/mlflow-trainer
  defaultImage: legion/mlflow-toolchain:1.0
  additionalEnvironments:
    MLFLOW_TRACKING_URI: http://mlflow.legion.svc:5000
    GIT_PYTHON_REFRESH: quiet
---
kind: PackagingIntegration
id: docker-rest
spec:
  entrypoint: /usr/local/bin/legion-pack-to-rest
  defaultImage: legion/packagers:1.0
  privileged: true
  schema:
    targets:
      - name: docker-push
        connectionTypes: [docker, ecr]
        required: true
        default: registry
      - name: docker-pull
        connectionTypes: [docker, ecr]
    arguments:
      type: object
      properties:
        imageName: {type: string}
        port: {type: integer, default: 5000}
        workers: {type: integer}
      required: [imageName]
      additionalProperties: false
---
kind: ModelTraining
id: wine-12
spec:
  model:
    name: wine
    version: 1.10
    artifactNameTemplate: "{{ .Name }}-{{ .Version }}.zip"
  toolchain: mlflow
  vcsName: models-repo
  reference: v1.2
  workDir: mlflow/sklearn/wine
  entrypoint: main
  args: [--epochs, 10]
  hyperParameters:
    alpha: 1.0
    l1-ratio: 0.50
  envs:
    - {name: PYTHONUNBUFFERED, value: "1"}
  data:
    - connName: wine-data
      localPath: mlflow/sklearn/wine/wine-quality.csv
      remotePath: wine/wine-quality.csv
  resources:
    limits: {cpu: 2, memory: 4Gi}
    requests: {cpu: 500m, memory: 1Gi}
---
kind: ModelPackaging
id: wine-12-rest
spec:
  artifactName: wine-1.10-20240501.zip
  integrationName: docker-rest
  arguments:
    imageName: "wine:{{ .Version }}"
    port: 8080
  targets:
    - name: docker-push
      connectionName: registry
  resources:
    limits: {cpu: 1, memory: 2Gi}
---
kind: ModelDeployment
id: wine-v1
spec:
  image: registry.example.com/legion/wine:1.10
  minReplicas: 2
  maxReplicas: 5
  livenessProbeInitialDelay: 10
  readinessProbeInitialDelay: 5
  imagePullConnID: registry
  roleName: predictor
  annotations:
    prometheus.io/scrape: "true"
  resources:
    limits: {cpu: "1", memory: 512Mi}
---
kind: ModelDeployment
id: wine-v2
spec:
  image: ./build/wine-2.0
  minReplicas: 0
---
kind: ModelRoute
id: wine
spec:
  urlPrefix: /custom/wine
  modelDeployments:
    - mdName: wine-v1
      weight: 80
    - mdName: wine-v2
      weight: 20
---
kind: ModelRoute
id: wine-canary
spec:
  urlPrefix: /canary/wine/
  modelDeployments:
    - mdName: wine-v1
  mirror: wine-v2
"""


def _all() -> list[Resource]:
    return [parse_resource(document) for document in load_documents(MANIFESTS)]


def _by_id() -> dict[str, Resource]:
    return {resource.id: resource for resource in _all()}


# --- every kind from a realistic manifest ---------------------------------------------------------------------


def test_every_kind_parses_from_a_manifest_in_file_order() -> None:
    resources = _all()
    assert [(r.kind, r.id) for r in resources] == [
        ("Connection", "models-repo"),
        ("Connection", "wine-data"),
        ("Connection", "registry"),
        ("ToolchainIntegration", "mlflow"),
        ("PackagingIntegration", "docker-rest"),
        ("ModelTraining", "wine-12"),
        ("ModelPackaging", "wine-12-rest"),
        ("ModelDeployment", "wine-v1"),
        ("ModelDeployment", "wine-v2"),
        ("ModelRoute", "wine"),
        ("ModelRoute", "wine-canary"),
    ]
    assert {r.kind for r in resources} == set(KINDS)


def test_connection_fields_keep_legions_names() -> None:
    repo = _by_id()["models-repo"]
    assert isinstance(repo, Connection)
    assert repo.metadata.labels == {"team": "census", "env": "prod"}
    assert repo.spec.type == "git"
    assert repo.spec.key_secret is not None and repo.spec.key_secret.startswith("-----BEGIN OPENSSH")
    assert repo.spec.web_ui_link == "https://github.com/legion-platform/legion-examples"
    document = to_document(repo)
    assert {"keySecret", "publicKey", "webUILink"} <= set(document["spec"])
    assert "s3cret" not in repr(_by_id()["registry"])  # secrets stay out of logs


def test_training_keeps_the_numbers_users_wrote_as_text() -> None:
    training = _by_id()["wine-12"]
    assert isinstance(training, ModelTraining)
    assert training.spec.model.version == "1.10"  # YAML's float 1.1 would lose the zero
    assert training.spec.hyper_parameters == {"alpha": "1.0", "l1-ratio": "0.50"}
    assert training.spec.args == ["--epochs", "10"]
    assert training.spec.vcs_name == "models-repo"
    assert training.spec.local_path is None
    assert training.status.state == "scheduling"
    assert training.spec.resources is not None and training.spec.resources.requests is not None
    assert training.spec.resources.requests.cpu == "500m"


def test_integrations_packaging_and_deployments() -> None:
    resources = _by_id()
    toolchain, integration = resources["mlflow"], resources["docker-rest"]
    assert isinstance(toolchain, ToolchainIntegration)
    assert toolchain.spec.additional_environments["GIT_PYTHON_REFRESH"] == "quiet"
    assert isinstance(integration, PackagingIntegration)
    assert integration.spec.privileged is True
    assert [t.name for t in integration.spec.schema_.targets] == ["docker-push", "docker-pull"]
    assert integration.spec.schema_.arguments["required"] == ["imageName"]
    packaging = resources["wine-12-rest"]
    assert isinstance(packaging, ModelPackaging)
    assert packaging.spec.arguments == {"imageName": "wine:{{ .Version }}", "port": 8080}
    assert packaging.status.state == "scheduling"
    v1, v2 = resources["wine-v1"], resources["wine-v2"]
    assert isinstance(v1, ModelDeployment) and isinstance(v2, ModelDeployment)
    assert (v1.spec.min_replicas, v1.spec.max_replicas, v1.spec.image_pull_conn_id) == (2, 5, "registry")
    assert (v2.spec.min_replicas, v2.spec.max_replicas) == (0, 1)  # scale to zero, up to one
    assert (v2.spec.liveness_probe_initial_delay, v2.spec.readiness_probe_initial_delay) == (2, 2)
    assert v2.status.state == "Processing"


def test_route_defaults_and_normalisation() -> None:
    canary = _by_id()["wine-canary"]
    assert isinstance(canary, ModelRoute)
    assert canary.spec.url_prefix == "/canary/wine"  # trailing slash dropped
    assert canary.spec.model_deployments[0].weight == 100  # a lone deployment takes all traffic
    assert canary.spec.mirror == "wine-v2"


def test_deployment_defaults() -> None:
    spec = {"image": "wine:1"}
    deployment = parse_resource({"kind": "ModelDeployment", "id": "d", "spec": spec})
    assert isinstance(deployment, ModelDeployment)
    assert (deployment.spec.min_replicas, deployment.spec.max_replicas) == (1, 1)
    scaled = parse_resource({"kind": "ModelDeployment", "id": "d", "spec": {**spec, "minReplicas": 3}})
    assert isinstance(scaled, ModelDeployment)
    assert scaled.spec.max_replicas == 3


def test_deployment_properties_keep_the_json_type_they_were_sent_as() -> None:
    values = {"n": 3, "ratio": 0.5, "on": True, "label": "7", "text": "true"}
    deployment = parse_resource({"kind": "ModelDeployment", "id": "d", "spec": {"image": "m", "properties": values}})
    assert isinstance(deployment, ModelDeployment)
    assert deployment.spec.properties == values
    assert [type(v) for v in deployment.spec.properties.values()] == [int, float, bool, str, str]


def test_snake_case_names_are_accepted_too() -> None:
    spec = {"image": "wine:1", "min_replicas": 2, "image_pull_conn_id": "registry"}
    deployment = parse_resource({"kind": "ModelDeployment", "id": "d", "spec": spec})
    assert isinstance(deployment, ModelDeployment)
    assert deployment.spec.image_pull_conn_id == "registry"
    assert to_document(deployment)["spec"]["imagePullConnID"] == "registry"


# --- invalid specs, each naming exactly its bad fields --------------------------------------------------------

ROUTE = {
    "urlPrefix": "/custom/wine",
    "modelDeployments": [{"mdName": "a", "weight": 50}, {"mdName": "b", "weight": 50}],
}
TRAINING = {"model": {"name": "wine", "version": "1"}, "toolchain": "mlflow", "entrypoint": "main", "vcsName": "repo"}
DEPLOYMENT = {"image": "wine:1"}
PACKAGING = {"artifactName": "wine-1", "integrationName": "docker-rest"}


def _with(base: dict[str, Any], **change: Any) -> dict[str, Any]:
    return {**base, **change}


# fmt: off
INVALID: list[tuple[str, str, dict[str, Any], dict[str, str]]] = [
    # (kind, id, spec, {field: part of the reason})
    ("ModelRoute", "r", _with(ROUTE, modelDeployments=[{"mdName": "a", "weight": 50}, {"mdName": "b", "weight": 40}]),
     {"spec.modelDeployments": "sum to 90, not 100"}),
    ("ModelRoute", "r", _with(ROUTE, modelDeployments=[{"mdName": "a", "weight": 100}, {"mdName": "b"}]),
     {"spec.modelDeployments.1.weight": "required when the route splits"}),
    ("ModelRoute", "r", _with(ROUTE, modelDeployments=[{"mdName": "a", "weight": 60}]),
     {"spec.modelDeployments.0.weight": "single deployment"}),
    ("ModelRoute", "r", _with(ROUTE, modelDeployments=[{"mdName": "a", "weight": 150}, {"mdName": "b", "weight": -50}]),
     {"spec.modelDeployments.0.weight": "less than or equal to 100",
      "spec.modelDeployments.1.weight": "greater than or equal to 0"}),
    ("ModelRoute", "r", _with(ROUTE, modelDeployments=[]), {"spec.modelDeployments": "at least 1"}),
    ("ModelRoute", "r", _with(ROUTE, modelDeployments=[{"mdName": "a", "weight": 50}, {"mdName": "a", "weight": 50}]),
     {"spec.modelDeployments.1.mdName": "routed to twice"}),
    ("ModelRoute", "r", _with(ROUTE, mirror="b"), {"spec.mirror": "already routed to"}),
    ("ModelRoute", "r", _with(ROUTE, urlPrefix="/model/wine"), {"spec.urlPrefix": "/model and the paths under it"}),
    ("ModelRoute", "r", _with(ROUTE, urlPrefix="/model"), {"spec.urlPrefix": "reserved"}),
    ("ModelRoute", "r", _with(ROUTE, urlPrefix="/feedback/x"), {"spec.urlPrefix": "/feedback and the paths under"}),
    ("ModelRoute", "r", _with(ROUTE, urlPrefix="custom/wine"), {"spec.urlPrefix": "must start with '/'"}),
    ("ModelRoute", "r", _with(ROUTE, urlPrefix="/custom/../model"), {"spec.urlPrefix": "'..'"}),
    ("ModelRoute", "r", _with(ROUTE, urlPrefix="/custom?x=1"), {"spec.urlPrefix": "query string"}),
    ("ModelRoute", "r", _with(ROUTE, urlPrefix="/"), {"spec.urlPrefix": "below '/'"}),
    ("ModelRoute", "r", _with(ROUTE, urlPrefix="/a//b"), {"spec.urlPrefix": "empty segments"}),
    ("ModelRoute", "r", _with(ROUTE, urlPrefix="/a b"), {"spec.urlPrefix": "may only contain"}),
    ("ModelDeployment", "d", _with(DEPLOYMENT, minReplicas=3, maxReplicas=2),
     {"spec.maxReplicas": "less than minReplicas (3)"}),
    ("ModelDeployment", "d", _with(DEPLOYMENT, maxReplicas=0), {"spec.maxReplicas": "greater than or equal to 1"}),
    ("ModelDeployment", "d", _with(DEPLOYMENT, minReplicas=-1), {"spec.minReplicas": "greater than or equal to 0"}),
    ("ModelDeployment", "d", _with(DEPLOYMENT, livenessProbeInitialDelay=-5),
     {"spec.livenessProbeInitialDelay": "greater than or equal to 0"}),
    ("ModelDeployment", "d", _with(DEPLOYMENT, image=""), {"spec.image": "at least 1 character"}),
    ("ModelDeployment", "d", _with(DEPLOYMENT, maxReplica=3), {"spec.maxReplica": "did you mean 'maxReplicas'"}),
    ("ModelDeployment", "d", {"minReplicas": 1}, {"spec.image": "required"}),
    ("ModelDeployment", "d", _with(DEPLOYMENT, properties={"a": [1], "b": None, "c": 1}),
     {"spec.properties.a": "not one number, text or boolean", "spec.properties.b": "not one number"}),
    ("ModelDeployment", "d", _with(DEPLOYMENT, properties={"text": "x" * 40_000}),
     {"spec.properties": "at most 32768"}),
    ("ModelDeployment", "d", _with(DEPLOYMENT, resources={"limits": {"memory": "1GB"}}),
     {"spec.resources.limits.memory": "'1GB' is not a quantity"}),
    ("ModelDeployment", "d", _with(DEPLOYMENT, resources={"limits": {"gpu": "0.5"}}),
     {"spec.resources.limits.gpu": "whole number"}),
    ("ModelDeployment", "d", _with(DEPLOYMENT, resources={"limits": {"cpu": "1"}, "requests": {"cpu": "1500m"}}),
     {"spec.resources.requests.cpu": "more than the limit"}),
    ("ModelDeployment", "d", _with(DEPLOYMENT, resources={"limits": {"disk": "1Gi"}}),
     {"spec.resources.limits.disk": "unknown field; known fields: cpu, memory, gpu"}),
    ("ModelDeployment", "d", _with(DEPLOYMENT, imagePullConnID="My Registry"),
     {"spec.imagePullConnID": "not a valid id"}),
    ("ModelDeployment", "Wine_V1", DEPLOYMENT, {"id": "not a valid id"}),
    ("ModelDeployment", "-wine", DEPLOYMENT, {"id": "not a valid id"}),
    ("ModelDeployment", "w" * 64, DEPLOYMENT, {"id": "at most 63"}),
    ("ModelTraining", "t", _with(TRAINING, localPath="./src"), {"spec.vcsName": "not both", "spec.localPath": "not both"}),
    ("ModelTraining", "t", {k: v for k, v in TRAINING.items() if k != "vcsName"},
     {"spec.vcsName": "required", "spec.localPath": "required"}),
    ("ModelTraining", "t", _with(TRAINING, vcsName=None, localPath="./src", reference="main"),
     {"spec.reference": "needs vcsName"}),
    ("ModelTraining", "t", _with(TRAINING, model={"name": "wine/red", "version": "1"}), {"spec.model.name": "URL path"}),
    ("ModelTraining", "t", _with(TRAINING, model={"name": "wine"}), {"spec.model.version": "required"}),
    ("ModelTraining", "t", _with(TRAINING, workDir="../outside"), {"spec.workDir": "'..'"}),
    ("ModelTraining", "t", _with(TRAINING, data=[{"connName": "d", "localPath": "/etc/passwd"}]),
     {"spec.data.0.localPath": "relative path"}),
    ("ModelTraining", "t", _with(TRAINING, envs=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
     {"spec.envs.1.name": "given twice"}),
    ("ModelTraining", "t", _with(TRAINING, envs=[{"name": "1A", "value": "1"}]), {"spec.envs.0.name": "environment variable"}),
    ("ModelTraining", "t", _with(TRAINING, hyperParameters={"verbose": True}), {"spec.hyperParameters.verbose": "valid string"}),
    ("ModelTraining", "t", _with(TRAINING, resources={"limits": {"cpu": "-1"}}), {"spec.resources.limits.cpu": "not a quantity"}),
    ("Connection", "c", {"type": "ftp", "uri": "ftp://x"}, {"spec.type": "'git'"}),
    ("Connection", "c", {"type": "s3"}, {"spec.uri": "required"}),
    ("Connection", "c", {"type": "git", "uri": "x", "keyId": "k"}, {"spec.keyId": "did you mean 'keyID'"}),
    ("ToolchainIntegration", "ti", {"entrypoint": "x", "additionalEnvironments": {"BAD-NAME": "1"}},
     {"spec.additionalEnvironments.BAD-NAME": "environment variable"}),
    ("ToolchainIntegration", "ti", {"defaultImage": "x"}, {"spec.entrypoint": "required"}),
    ("PackagingIntegration", "pi", {"entrypoint": "x", "schema": {"targets": [{"name": "push", "connectionTypes": []}]}},
     {"spec.schema.targets.0.connectionTypes": "at least 1"}),
    ("PackagingIntegration", "pi", {"entrypoint": "x", "schema": {"arguments": {"type": "array"}}},
     {"spec.schema.arguments.type": "describe an object"}),
    ("PackagingIntegration", "pi",
     {"entrypoint": "x", "schema": {"arguments": {"properties": {"a": {}}, "required": ["a", "b"]}}},
     {"spec.schema.arguments.required.1": "'b' is not among the properties"}),
    ("PackagingIntegration", "pi", {"entrypoint": "x", "schema": {"arguments": {"properties": {"a": {"pattern": "("}}}}},
     {"spec.schema.arguments.properties.a.pattern": "not a regular expression"}),
    ("ModelPackaging", "p", {"artifactName": "a.zip", "integrationName": "pi",
                             "targets": [{"name": "t", "connectionName": "c"}, {"name": "t", "connectionName": "d"}]},
     {"spec.targets.1.name": "given twice"}),
    ("ModelPackaging", "p", {"artifactName": "a.zip", "integrationName": "pi", "arguments": {"when": float("nan")}},
     {"spec.arguments": "not a finite number"}),
]
# fmt: on


@pytest.mark.parametrize(("kind", "ident", "spec", "expected"), INVALID)
def test_invalid_specs_name_exactly_their_bad_fields(
    kind: str, ident: str, spec: dict[str, Any], expected: dict[str, str]
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_resource({"kind": kind, "id": ident, "spec": spec})
    error = caught.value
    assert error.status == 422
    assert set(error.fields) == set(expected), error.detail
    for field, reason in expected.items():
        assert reason in error.fields[field]
        assert field in error.detail
    assert error.detail.startswith(f"invalid {kind}")


def test_every_bad_field_is_named_in_one_error() -> None:
    document = {
        "kind": "ModelDeployment",
        "id": "Bad_Id",
        "metadata": {"labels": {"team": "a b"}},
        "spec": {"image": "", "minReplicas": -1, "resources": {"limits": {"cpu": "lots"}}, "colour": "red"},
    }
    with pytest.raises(InvalidInputError) as caught:
        parse_resource(document)
    assert set(caught.value.fields) == {
        "id",
        "metadata.labels.team",
        "spec.image",
        "spec.minReplicas",
        "spec.resources.limits.cpu",
        "spec.colour",
    }


def test_cross_field_errors_join_field_errors() -> None:
    spec = {"urlPrefix": "/model/x", "modelDeployments": [{"mdName": "a", "weight": 30}, {"mdName": "b", "weight": 30}]}
    with pytest.raises(InvalidInputError) as caught:
        parse_resource({"kind": "ModelRoute", "id": "BAD", "spec": spec})
    assert set(caught.value.fields) == {"id", "spec.urlPrefix"}  # the sum is checked once the fields are valid
    spec["urlPrefix"] = "/x"
    with pytest.raises(InvalidInputError) as caught:
        parse_resource({"kind": "ModelRoute", "id": "BAD", "spec": spec})
    assert set(caught.value.fields) == {"id", "spec.modelDeployments"}


@pytest.mark.parametrize(
    ("document", "field", "reason"),
    [
        ({"kind": "ModelDeploy", "id": "x", "spec": {}}, "kind", "known kinds: Connection, ToolchainIntegration"),
        ({"kind": "dep", "id": "x", "spec": {}}, "kind", "did you mean ModelDeployment?"),
        ({"kind": 7, "id": "x", "spec": {}}, "kind", "unknown kind '7'"),
        ({"id": "x", "spec": {}}, "kind", "required: one of Connection"),
        (
            {"kind": "Connection", "id": "x", "spec": {"type": "git", "uri": "u"}, "apiVersion": "v1"},
            "apiVersion",
            "unknown field",
        ),
        ({"kind": "Connection", "id": "x"}, "spec", "required"),
        ({"kind": "Connection", "spec": {"type": "git", "uri": "u"}}, "id", "required"),
        ({"kind": "Connection", "id": "x", "spec": "git"}, "spec", "must be a mapping"),
    ],
)
def test_envelope_errors(document: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_resource(document)
    assert reason in caught.value.fields[field]
    assert reason in caught.value.detail


def test_expected_kind_fills_in_or_refuses() -> None:
    route = parse_resource({"id": "r", "spec": ROUTE}, kind="ModelRoute")
    assert isinstance(route, ModelRoute)
    with pytest.raises(InvalidInputError) as caught:
        parse_resource({"kind": "ModelRoute", "id": "r", "spec": ROUTE}, kind="dep")
    assert caught.value.fields == {"kind": "expected ModelDeployment, got ModelRoute"}


def test_a_non_mapping_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="must be a mapping"):
        parse_resource(["kind", "Connection"])  # type: ignore[arg-type]  # what a bad JSON body holds


def test_status_and_times_belong_to_the_platform() -> None:
    document = {
        "kind": "ModelDeployment",
        "id": "d",
        "metadata": {"labels": {"a": "b"}, "createdAt": "2020-01-01T00:00:00Z"},
        "spec": DEPLOYMENT,
        "status": {"state": "Ready", "replicas": "lots"},  # not even valid: ignored all the same
    }
    deployment = parse_resource(document)
    assert isinstance(deployment, ModelDeployment)
    assert deployment.status.state == "Processing"
    assert deployment.metadata.created_at is None
    assert deployment.metadata.labels == {"a": "b"}
    document["status"] = {"state": "Ready", "replicas": 2, "availableReplicas": 2, "serviceURL": "http://x"}
    kept = parse_resource(document, keep_status=True)
    assert isinstance(kept, ModelDeployment)
    assert (kept.status.state, kept.status.service_url) == ("Ready", "http://x")
    assert kept.metadata.created_at is not None and kept.metadata.created_at.year == 2020


# --- documents: YAML, JSON, order, errors, sizes --------------------------------------------------------------


def test_json_list_and_object_keep_file_order() -> None:
    documents = [{"kind": "Connection", "id": name, "spec": {"type": "local", "uri": "/data"}} for name in "cab"]
    assert [d["id"] for d in load_documents(json.dumps(documents))] == ["c", "a", "b"]
    assert [d["id"] for d in load_documents(json.dumps(documents[0], indent=2))] == ["c"]
    as_yaml = yaml.safe_dump_all(documents)
    assert [d["id"] for d in load_documents(as_yaml)] == ["c", "a", "b"]
    assert [d["id"] for d in load_documents(yaml.safe_dump(documents))] == ["c", "a", "b"]  # one YAML list


def test_yaml_flow_style_is_not_mistaken_for_json() -> None:
    assert load_documents("[{kind: Connection, id: a}, {kind: Connection, id: b}]") == [
        {"kind": "Connection", "id": "a"},
        {"kind": "Connection", "id": "b"},
    ]


def test_empty_documents_are_skipped() -> None:
    assert load_documents("") == []
    assert load_documents("---\n---\n") == []
    assert [d["id"] for d in load_documents("---\nkind: Connection\nid: a\n---\n\n---\n")] == ["a"]


def test_json_floats_keep_their_text_too() -> None:
    spec = json.dumps(TRAINING).replace('"1"', "2.10")
    text = f'{{"kind": "ModelTraining", "id": "t", "spec": {spec}}}'
    training = parse_resource(load_documents(text)[0])
    assert isinstance(training, ModelTraining)
    assert training.spec.model.version == "2.10"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: Connection\nid: a\nspec:\n  type: git\n uri: x\n", "invalid YAML at line 5"),
        ("kind: Connection\n---\nid: [a, b\n", "invalid YAML at line 4"),
        ('[{"kind": "Connection",\n  "id": }]', "invalid JSON at line 2, column 9"),
        ("- 1\n- kind: Connection\n", "item 1: a resource must be a mapping, not a number"),
        ("kind: Connection\n---\njust text\n", "document 2: a resource must be a mapping, not a string"),
        ("kind: Connection\nid: a\nspec: " + "[" * 100 + "]" * 100, "spec.0.0.0"),
    ],
)
def test_bad_text_is_refused_with_its_place(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        load_documents(text)
    assert message in caught.value.detail


def test_a_ten_megabyte_field_is_refused_by_name() -> None:
    big = "x" * (10 * 1024 * 1024)
    document = {"kind": "Connection", "id": "c", "spec": {"type": "git", "uri": "u", "description": big}}
    with pytest.raises(PayloadTooLargeError) as caught:
        parse_resource(document)
    assert caught.value.status == 413
    assert list(caught.value.fields) == ["spec.description"]
    assert str(MAX_FIELD_BYTES) in caught.value.detail
    text = "kind: Connection\n---\nkind: Connection\nid: c\nspec:\n  description: " + "x" * (2 * MAX_FIELD_BYTES)
    with pytest.raises(PayloadTooLargeError) as caught:
        load_documents(text)
    assert caught.value.detail.startswith("document 2: too large: spec.description")


def test_field_limit_counts_bytes_and_keys() -> None:
    wide = "é" * (MAX_FIELD_BYTES // 2 + 1)  # under the limit in characters, over it in UTF-8 bytes
    with pytest.raises(PayloadTooLargeError) as caught:
        parse_resource({"kind": "Connection", "id": "c", "spec": {"type": "git", "uri": wide}})
    assert list(caught.value.fields) == ["spec.uri"]
    with pytest.raises(PayloadTooLargeError) as caught:
        parse_resource({"kind": "Connection", "id": "c", "metadata": {"labels": {"k" * MAX_FIELD_BYTES * 2: "v"}}})
    [field] = caught.value.fields
    assert field.endswith("(the key)")


def test_a_whole_document_over_the_limit_is_refused() -> None:
    arguments = {f"a{i}": "x" * 1000 for i in range(5000)}  # 5 MB in fields of 1 kB
    with pytest.raises(PayloadTooLargeError, match="over the 4194304-byte limit"):
        parse_resource({"kind": "ModelPackaging", "id": "p", "spec": {"arguments": arguments}})


def test_yaml_alias_bombs_stop_early() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    text = "kind: ModelPackaging\nid: p\nspec:\n  arguments:\n" + "\n".join("    " + line for line in lines)
    with pytest.raises(PayloadTooLargeError):
        load_documents(text)


# --- secrets ---------------------------------------------------------------------------------------------------


def _registry_spec(**change: Any) -> ConnectionSpec:
    base: dict[str, Any] = {"type": "docker", "uri": "registry.example.com", "username": "robot", "password": "pw"}
    return ConnectionSpec.model_validate({**base, **change})


def test_mask_secrets_hides_every_set_secret_only() -> None:
    spec = _registry_spec(keyID="AKIA", keySecret="sk")
    masked = mask_secrets(spec)
    assert (masked.password, masked.key_id, masked.key_secret) == (SECRET_MASK,) * 3
    assert masked.username == "robot" and masked.uri == spec.uri
    assert spec.password == "pw"  # a copy
    assert mask_secrets(_registry_spec(password=None)).password is None
    assert set(SECRET_FIELDS) == {"password", "keyID", "keySecret"}
    assert all(
        to_document_value == SECRET_MASK
        for to_document_value in (masked.model_dump(by_alias=True)[f] for f in SECRET_FIELDS)
    )


def test_merge_secrets_keeps_stored_values_sent_back_masked() -> None:
    stored = _registry_spec(keySecret="sk")
    update = mask_secrets(stored).model_copy(update={"username": "robot2"})
    merged = merge_secrets(update, stored)
    assert (merged.username, merged.password, merged.key_secret) == ("robot2", "pw", "sk")
    changed = merge_secrets(_registry_spec(password="new", keySecret=SECRET_MASK), stored)
    assert (changed.password, changed.key_secret) == ("new", "sk")
    cleared = merge_secrets(_registry_spec(password=None), stored)
    assert cleared.password is None


def test_a_mask_with_nothing_stored_is_refused() -> None:
    with pytest.raises(InvalidInputError) as caught:
        merge_secrets(_registry_spec(password=SECRET_MASK, keyID=SECRET_MASK), None)
    assert set(caught.value.fields) == {"spec.password", "spec.keyID"}
    with pytest.raises(InvalidInputError):
        merge_secrets(_registry_spec(keySecret=SECRET_MASK), _registry_spec())


# --- references ------------------------------------------------------------------------------------------------


def test_references_name_kind_id_and_field() -> None:
    resources = _by_id()
    assert references(resources["wine-12"]) == [
        Reference("ToolchainIntegration", "mlflow", "spec.toolchain"),
        Reference("Connection", "models-repo", "spec.vcsName"),
        Reference("Connection", "wine-data", "spec.data.0.connName"),
    ]
    assert references(resources["wine-12-rest"]) == [
        ("PackagingIntegration", "docker-rest", "spec.integrationName"),
        ("Connection", "registry", "spec.targets.0.connectionName"),
    ]
    assert references(resources["wine-v1"]) == [("Connection", "registry", "spec.imagePullConnID")]
    assert references(resources["wine-v2"]) == []
    assert references(resources["wine"]) == [
        ("ModelDeployment", "wine-v1", "spec.modelDeployments.0.mdName"),
        ("ModelDeployment", "wine-v2", "spec.modelDeployments.1.mdName"),
    ]
    assert references(resources["wine-canary"])[-1] == ("ModelDeployment", "wine-v2", "spec.mirror")
    assert references(resources["docker-rest"]) == [("Connection", "registry", "spec.schema.targets.0.default")]
    assert references(resources["models-repo"]) == []


def test_check_references_finds_missing_and_misfit_objects() -> None:
    stored = _by_id()

    def lookup(kind: str, ident: str) -> Resource | None:
        found = stored.get(ident)
        return found if found is not None and found.kind == kind else None

    for resource in stored.values():
        assert check_references(resource, lookup) == {}, resource.id
    training = stored["wine-12"]
    assert isinstance(training, ModelTraining)
    wrong = training.model_copy(update={"spec": training.spec.model_copy(update={"vcs_name": "wine-data"})})
    assert check_references(wrong, lookup) == {
        "spec.vcsName": "the connection 'wine-data' is of type s3; this field takes git"
    }
    route = parse_resource({"kind": "ModelRoute", "id": "r", "spec": _with(ROUTE, mirror="ghost")})
    assert check_references(route, lookup) == {
        "spec.modelDeployments.0.mdName": "no ModelDeployment 'a'",
        "spec.modelDeployments.1.mdName": "no ModelDeployment 'b'",
        "spec.mirror": "no ModelDeployment 'ghost'",
    }


def test_check_references_holds_a_packaging_to_its_integration_schema() -> None:
    stored = _by_id()

    def lookup(kind: str, ident: str) -> Resource | None:
        return stored.get(ident)

    spec = {
        "artifactName": "wine.zip",
        "integrationName": "docker-rest",
        "arguments": {"port": 1, "colour": "red"},
        "targets": [
            {"name": "docker-pull", "connectionName": "wine-data"},
            {"name": "s3-push", "connectionName": "registry"},
        ],
    }
    packaging = parse_resource({"kind": "ModelPackaging", "id": "p", "spec": spec})
    problems = check_references(packaging, lookup)
    assert set(problems) == {
        "spec.targets.0.connectionName",
        "spec.targets.1.name",
        "spec.arguments.imageName",
        "spec.arguments.colour",
    }
    assert "takes docker, ecr" in problems["spec.targets.0.connectionName"]
    assert "docker-push, docker-pull" in problems["spec.targets.1.name"]


def test_packaging_arguments_are_held_to_the_type_and_choices_of_their_schema() -> None:
    schema = {"type": "object", "additionalProperties": False, "properties": {
        "envManager": {"type": "string", "enum": ["local", "virtualenv"]},
        "workers": {"type": ["integer", "null"]}, "flavor": {"const": "local"}}}  # fmt: skip
    integration = parse_resource({"kind": "PackagingIntegration", "id": "local",
                                  "spec": {"entrypoint": "legion model package", "schema": {"arguments": schema}}})  # fmt: skip

    def problems(arguments: dict[str, Any]) -> dict[str, str]:
        spec = {"artifactName": "m-1", "integrationName": "local", "arguments": arguments}
        packaging = parse_resource({"kind": "ModelPackaging", "id": "p", "spec": spec})
        return check_references(packaging, lambda kind, ident: integration)

    assert problems({"envManager": "virtualenv", "workers": None, "flavor": "local"}) == {}
    assert problems({"envManager": "conda", "workers": True, "flavor": "image"}) == {
        "spec.arguments.envManager": "'conda' is not one of 'local', 'virtualenv' (the schema of 'local')",
        "spec.arguments.workers": "True is not of type integer or null (the schema of 'local')",
        "spec.arguments.flavor": "'image' is not 'local' (the schema of 'local')",
    }
    assert problems({"envManager": 1}) == {
        "spec.arguments.envManager": "1 is not of type string (the schema of 'local')"
    }


# --- the kinds table -------------------------------------------------------------------------------------------


def test_kinds_table_holds_legions_names_and_paths() -> None:
    assert {(k.name, k.short_name, k.path) for k in KINDS.values()} == {
        ("Connection", "conn", "/connection"),
        ("ToolchainIntegration", "ti", "/toolchain/integration"),
        ("PackagingIntegration", "pi", "/packaging/integration"),
        ("ModelTraining", "train", "/model/training"),
        ("ModelPackaging", "pack", "/model/packaging"),
        ("ModelDeployment", "dep", "/model/deployment"),
        ("ModelRoute", "route", "/model/route"),
    }
    for info in KINDS.values():
        assert info.model.model_fields["kind"].default == info.name
        for name in (info.name, info.name.upper(), info.short_name, *info.aliases):
            assert find_kind(name) is info
    with pytest.raises(InvalidInputError, match="known kinds: Connection \\(conn\\)"):
        find_kind("widget")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        ("1.5", Decimal("1.5")),
        ("1Gi", Decimal(2**30)),
        ("256Mi", Decimal(256 * 2**20)),
        ("1k", Decimal(1000)),
        ("1e3", Decimal(1000)),
        ("2E", Decimal(2 * 10**18)),
        ("1Ei", Decimal(2**60)),
        ("1E3", Decimal(1000)),
        ("25e-1", Decimal("2.5")),
        (".5", Decimal("0.5")),
    ],
)
def test_quantities(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "-1", "1GB", "1 Gi", "one", "1.2.3", "Mi", "1e", "1ki", "1Ki3"])
def test_bad_quantities(text: str) -> None:
    with pytest.raises(ValueError, match="is not a quantity"):
        parse_quantity(text)


@pytest.mark.parametrize("text", ["1e999999999", "9" * 40, "1e-40"])
def test_absurd_quantities_are_refused_not_crashed_on(text: str) -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_quantity(text)
    spec = {"image": "x", "resources": {"limits": {"gpu": text, "cpu": "1"}, "requests": {"cpu": text}}}
    with pytest.raises(InvalidInputError) as caught:
        parse_resource({"kind": "ModelDeployment", "id": "d", "spec": spec})
    assert set(caught.value.fields) == {"spec.resources.limits.gpu", "spec.resources.requests.cpu"}


# --- round trips -----------------------------------------------------------------------------------------------


def test_every_manifest_round_trips_through_documents() -> None:
    for resource in _all():
        document = to_document(resource)
        assert parse_resource(document, keep_status=True) == resource
        assert parse_resource(json.loads(json.dumps(document)), keep_status=True) == resource
        assert parse_resource(load_documents(yaml.safe_dump(document))[0], keep_status=True) == resource


def test_to_document_drops_none_and_empty_defaults() -> None:
    deployment = parse_resource({"kind": "ModelDeployment", "id": "d", "spec": DEPLOYMENT})
    assert to_document(deployment) == {
        "kind": "ModelDeployment",
        "id": "d",
        "spec": {
            "image": "wine:1",
            "minReplicas": 1,
            "maxReplicas": 1,
            "resources": {  # Legion's defaults, filled in
                "limits": {"cpu": "256m", "memory": "256Mi"},
                "requests": {"cpu": "128m", "memory": "128Mi"},
            },
            "livenessProbeInitialDelay": 2,
            "readinessProbeInitialDelay": 2,
            "predictionLogging": True,
        },
        "status": {"state": "Processing", "replicas": 0, "availableReplicas": 0},
    }
    connection = parse_resource({"kind": "Connection", "id": "c", "spec": {"type": "local", "uri": "/data"}})
    assert to_document(connection) == {"kind": "Connection", "id": "c", "spec": {"type": "local", "uri": "/data"}}


IDS = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)
TEXT = st.text(st.characters(codec="utf-8"), max_size=30)
LABELS = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True), st.from_regex(r"[a-z0-9]{0,8}", fullmatch=True), max_size=3
)
QUANTITIES = st.one_of(
    st.integers(1, 64).map(str), st.integers(1, 4000).map(lambda n: f"{n}m"), st.integers(1, 64).map(lambda n: f"{n}Gi")
)
RESOURCES = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {}, optional={"limits": st.fixed_dictionaries({}, optional={"cpu": QUANTITIES, "memory": QUANTITIES})}
    ),
)


@st.composite
def weights(draw: st.DrawFn) -> list[int]:
    count = draw(st.integers(1, 5))
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=count - 1, max_size=count - 1)))
    return [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]


@st.composite
def routes(draw: st.DrawFn) -> dict[str, Any]:
    shares = draw(weights())
    names = draw(st.lists(IDS, min_size=len(shares) + 1, max_size=len(shares) + 1, unique=True))
    targets = [{"mdName": n, "weight": w} for n, w in zip(names, shares, strict=False)]
    if len(targets) == 1 and draw(st.booleans()):
        del targets[0]["weight"]
    segments = draw(
        st.lists(st.from_regex(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,10}", fullmatch=True), min_size=1, max_size=3)
    )
    prefix = "/" + "/".join(segments)
    spec: dict[str, Any] = {"urlPrefix": prefix, "modelDeployments": targets}
    if draw(st.booleans()):
        spec["mirror"] = names[-1]
    return {"kind": "ModelRoute", "id": draw(IDS), "metadata": {"labels": draw(LABELS)}, "spec": spec}


@st.composite
def deployments(draw: st.DrawFn) -> dict[str, Any]:
    low = draw(st.integers(0, 10))
    spec: dict[str, Any] = {"image": draw(st.from_regex(r"[a-z0-9./:-]{1,40}", fullmatch=True)), "minReplicas": low}
    if draw(st.booleans()):
        spec["maxReplicas"] = draw(st.integers(max(low, 1), 20))
    if (resources := draw(RESOURCES)) is not None:
        spec["resources"] = resources
    optional = {
        "imagePullConnID": IDS,
        "roleName": TEXT,
        "annotations": st.dictionaries(TEXT, TEXT, max_size=3),
        "livenessProbeInitialDelay": st.integers(0, 600),
    }
    spec.update(draw(st.fixed_dictionaries({}, optional=optional)))
    status = draw(
        st.fixed_dictionaries(
            {}, optional={"state": st.sampled_from(["Ready", "Failed"]), "replicas": st.integers(0, 9), "reason": TEXT}
        )
    )
    return {"kind": "ModelDeployment", "id": draw(IDS), "spec": spec, "status": status}


@st.composite
def connections(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": draw(st.sampled_from(["git", "s3", "gcs", "azureblob", "docker", "ecr", "local"]))}
    spec["uri"] = draw(TEXT.filter(bool))
    names = [
        "reference",
        "region",
        "username",
        "password",
        "keyID",
        "keySecret",
        "publicKey",
        "description",
        "webUILink",
    ]
    spec.update(draw(st.fixed_dictionaries({}, optional=dict.fromkeys(names, TEXT))))
    return {"kind": "Connection", "id": draw(IDS), "metadata": {"labels": draw(LABELS)}, "spec": spec}


@st.composite
def trainings(draw: st.DrawFn) -> dict[str, Any]:
    version = draw(st.one_of(st.from_regex(r"[0-9]{1,3}\.[0-9]{1,3}0", fullmatch=True), IDS))
    spec: dict[str, Any] = {
        "model": {"name": draw(IDS), "version": version},
        "toolchain": draw(IDS),
        "entrypoint": "main",
    }
    if draw(st.booleans()):
        spec["vcsName"] = draw(IDS)
        spec["reference"] = draw(TEXT.filter(bool))
    else:
        spec["localPath"] = draw(TEXT.filter(bool))
    spec["args"] = draw(st.lists(TEXT, max_size=3))
    spec["hyperParameters"] = draw(st.dictionaries(TEXT, TEXT, max_size=3))
    spec["data"] = [
        {"connName": c, "localPath": p}
        for c, p in draw(
            st.lists(st.tuples(IDS, st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8})*", fullmatch=True)), max_size=2)
        )
    ]
    return {"kind": "ModelTraining", "id": draw(IDS), "spec": spec}


@given(st.one_of(routes(), deployments(), connections(), trainings()))
def test_documents_round_trip(document: dict[str, Any]) -> None:
    resource = parse_resource(document, keep_status=True)
    again = to_document(resource)
    assert parse_resource(again, keep_status=True) == resource
    assert to_document(parse_resource(again, keep_status=True)) == again
    through_yaml = load_documents(yaml.safe_dump_all([again, again]))
    assert [parse_resource(d, keep_status=True) for d in through_yaml] == [resource, resource]
    assert load_documents(json.dumps([again])) == [again]
    for field, value in document["spec"].items():
        if isinstance(value, str) and field != "urlPrefix":
            assert again["spec"][field] == value


@given(routes())
def test_route_weights_are_whole_percentages(document: dict[str, Any]) -> None:
    route = parse_resource(document)
    assert isinstance(route, ModelRoute)
    assert sum(t.weight for t in route.spec.model_deployments) == 100


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=20,
)
SPEC_KEYS = st.sampled_from(
    ["image", "minReplicas", "maxReplicas", "urlPrefix", "modelDeployments", "mirror", "type", "uri", "model",
     "toolchain", "vcsName", "localPath", "entrypoint", "resources", "schema", "arguments", "targets", "data"]
)  # fmt: skip


@given(
    st.sampled_from(list(KINDS)),
    st.one_of(IDS, TEXT),
    st.dictionaries(SPEC_KEYS, JSON_VALUES, max_size=6),
    JSON_VALUES,
)
def test_any_mapping_yields_a_resource_or_an_invalid_input_error(
    kind: str, ident: str, spec: dict[str, Any], metadata: object
) -> None:
    document = {"kind": kind, "id": ident, "spec": spec, "metadata": metadata}
    try:
        resource = parse_resource(document)
    except InvalidInputError as exc:
        assert exc.fields, exc.detail
    else:
        assert parse_resource(to_document(resource), keep_status=True) == resource


@given(st.text(max_size=200))
def test_any_text_yields_documents_or_an_invalid_input_error(text: str) -> None:
    try:
        documents = load_documents(text)
    except InvalidInputError as exc:
        assert exc.detail
    else:
        assert all(isinstance(d, dict) for d in documents)


# --- default resources -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "limits", "requests"),
    [
        (None, {"cpu": "256m", "memory": "256Mi"}, {"cpu": "128m", "memory": "128Mi"}),
        ({}, {"cpu": "256m", "memory": "256Mi"}, {"cpu": "128m", "memory": "128Mi"}),
        ({"limits": {"memory": "1Gi"}}, {"cpu": "256m", "memory": "1Gi"}, {"cpu": "128m", "memory": "128Mi"}),
        # a limit below the default request lowers the request to it
        ({"limits": {"memory": "64Mi", "cpu": "100m"}}, {"cpu": "100m", "memory": "64Mi"},
         {"cpu": "100m", "memory": "64Mi"}),
        # a request above the default limit raises the limit to it
        ({"requests": {"cpu": "2", "memory": "1G"}}, {"cpu": "2", "memory": "1G"}, {"cpu": "2", "memory": "1G"}),
        ({"requests": {"cpu": "200m"}}, {"cpu": "256m", "memory": "256Mi"}, {"cpu": "200m", "memory": "128Mi"}),
        ({"limits": {"gpu": "1"}}, {"cpu": "256m", "memory": "256Mi", "gpu": "1"}, {"cpu": "128m", "memory": "128Mi"}),
    ],
)  # fmt: skip
@pytest.mark.parametrize("kind", ["ModelDeployment", "ModelTraining", "ModelPackaging"])
def test_missing_resources_get_legions_defaults_in_the_spec(
    kind: str, given: dict[str, Any] | None, limits: dict[str, str], requests: dict[str, str]
) -> None:
    spec = {"ModelDeployment": DEPLOYMENT, "ModelTraining": TRAINING, "ModelPackaging": PACKAGING}[kind]
    body = _with(spec, resources=given) if given is not None else spec
    document = to_document(parse_resource({"kind": kind, "id": "x", "spec": body}))
    assert document["spec"]["resources"] == {"limits": limits, "requests": requests}
    # what is stored reads back the same, and filling in is idempotent
    assert to_document(parse_resource(document)) == document
