"""The management API over real HTTP: CRUD for every kind, validation naming every field, references, secrets,
auth by role, and nothing stored when a request is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from legion.api.storage import Cipher, ResourceStore, create_engine
from tests.api.conftest import Api, cli_token, start_api

DEPLOYMENT = {"kind": "ModelDeployment", "id": "census", "spec": {"image": "models/census", "minReplicas": 2}}
CONNECTION = {
    "kind": "Connection",
    "id": "repo",
    "spec": {"type": "git", "uri": "git@host:a/b.git", "keySecret": "TOPSECRET-1"},
}
TOOLCHAIN = {
    "kind": "ToolchainIntegration",
    "id": "python",
    "spec": {"entrypoint": "legion-train", "defaultImage": "python:3.11"},
}


def call(api: Api, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
    headers = api.headers(token if token is not None else api.admin)
    return httpx.request(method, f"{api.url}/api/v1{path}", headers=headers, timeout=30, **kwargs)


def test_deployment_crud(api: Api) -> None:
    created = call(api, "POST", "/model/deployment", json=DEPLOYMENT)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["spec"]["maxReplicas"] == 2  # Legion's default: at least minReplicas
    assert body["spec"]["resources"] == {  # Legion's defaults, stored as Kubernetes' defaulting would
        "limits": {"cpu": "256m", "memory": "256Mi"},
        "requests": {"cpu": "128m", "memory": "128Mi"},
    }
    assert body["status"]["state"] == "Processing"
    got = call(api, "GET", "/model/deployment/census", api.viewer)
    assert got.json()["spec"] == body["spec"]
    changed = call(
        api,
        "PUT",
        "/model/deployment/census",
        json={**DEPLOYMENT, "spec": {"image": "models/census", "minReplicas": 1}},
    )
    assert changed.json()["spec"]["minReplicas"] == 1
    listed = call(api, "GET", "/model/deployment", params={"search": "cen"})
    assert [o["id"] for o in listed.json()] == ["census"]
    assert listed.headers["x-total-count"] == "1"
    assert call(api, "DELETE", "/model/deployment/census").status_code == 200
    assert call(api, "GET", "/model/deployment/census").status_code == 404


def test_listing_pages_and_label_filters(api: Api) -> None:
    for i in range(5):
        doc = {**DEPLOYMENT, "id": f"page-{i}", "metadata": {"labels": {"team": "a" if i % 2 else "b"}}}
        assert call(api, "POST", "/model/deployment", json=doc).status_code == 201
    first = call(api, "GET", "/model/deployment", params={"search": "page-", "size": 2})
    second = call(api, "GET", "/model/deployment", params={"search": "page-", "size": 2, "page": 1})
    assert [o["id"] for o in first.json()] == ["page-0", "page-1"]
    assert [o["id"] for o in second.json()] == ["page-2", "page-3"]
    assert first.headers["x-total-count"] == "5"
    team_a = call(api, "GET", "/model/deployment", params={"labels": "team=a"})
    assert [o["id"] for o in team_a.json()] == ["page-1", "page-3"]


def test_connection_secrets_are_masked_encrypted_and_kept(api: Api) -> None:
    created = call(api, "POST", "/connection", json=CONNECTION)
    assert created.json()["spec"]["keySecret"] == "*****"
    assert "TOPSECRET" not in call(api, "GET", "/connection").text
    # an update that sends the mask back keeps the stored secret
    kept = call(
        api,
        "PUT",
        "/connection/repo",
        json={**CONNECTION, "spec": {**CONNECTION["spec"], "keySecret": "*****", "description": "x"}},
    )  # type: ignore[dict-item]
    assert kept.status_code == 200, kept.text
    raw = sqlite3.connect(api.data_dir / "legion.db").execute("SELECT spec FROM resources WHERE id = 'repo'").fetchone()
    assert "TOPSECRET" not in raw[0]  # encrypted at rest
    assert "keySecret" in raw[0]


@pytest.mark.parametrize(
    ("path", "document", "status", "fields"),
    [
        (
            "/model/route",
            {
                "id": "r",
                "spec": {
                    "urlPrefix": "/r",
                    "modelDeployments": [{"mdName": "a", "weight": 60}, {"mdName": "b", "weight": 30}],
                },
            },
            422,
            ["spec.modelDeployments"],
        ),
        (
            "/model/route",
            {"id": "r", "spec": {"urlPrefix": "/r", "modelDeployments": [{"mdName": "ghost"}]}},
            422,
            ["spec.modelDeployments.0.mdName"],
        ),
        (
            "/model/route",
            {"id": "r", "spec": {"urlPrefix": "/feedback/x", "modelDeployments": [{"mdName": "a"}]}},
            422,
            ["spec.urlPrefix"],
        ),
        (
            "/model/deployment",
            {"id": "Bad_Id", "spec": {"image": "x", "minReplicas": 3, "maxReplicas": 1}},
            422,
            ["id", "spec.maxReplicas"],
        ),
        ("/model/deployment", {"id": "d", "spec": {"image": "x", "replicas": 3}}, 422, ["spec.replicas"]),
        (
            "/model/deployment",
            {"id": "d", "spec": {"image": "x", "resources": {"limits": {"memory": "1GB", "cpu": "half"}}}},
            422,
            ["spec.resources.limits.memory", "spec.resources.limits.cpu"],
        ),
        (
            "/model/training",
            {
                "id": "t",
                "spec": {
                    "model": {"name": "m", "version": "1"},
                    "toolchain": "nope",
                    "localPath": "/src",
                    "entrypoint": "train.py",
                },
            },
            422,
            ["spec.toolchain"],
        ),
        ("/model/deployment", {"kind": "ModelRoute", "id": "d", "spec": {}}, 422, []),
    ],
)
def test_invalid_specs_name_every_bad_field_and_store_nothing(
    api: Api, path: str, document: dict[str, Any], status: int, fields: list[str]
) -> None:
    before = call(api, "GET", path).json()
    answer = call(api, "POST", path, json=document)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == status
    for field in fields:
        assert field in problem.get("errors", {}), problem
    assert call(api, "GET", path).json() == before


def test_malformed_bodies_are_4xx(api: Api) -> None:
    headers = {**api.headers(api.admin), "content-type": "application/json"}
    assert httpx.post(f"{api.url}/api/v1/model/deployment", content=b"{oops", headers=headers).status_code == 400
    assert httpx.post(f"{api.url}/api/v1/model/deployment", content=b"", headers=headers).status_code == 400
    big = {"id": "big", "spec": {"image": "x" * (10 * 1024 * 1024)}}
    assert (
        httpx.post(
            f"{api.url}/api/v1/model/deployment", json=big, headers=api.headers(api.admin), timeout=60
        ).status_code
        == 413
    )


def test_duplicates_conflict_and_references_block_deletion(api: Api) -> None:
    assert call(api, "POST", "/model/deployment", json={**DEPLOYMENT, "id": "v1"}).status_code == 201
    duplicate = call(api, "POST", "/model/deployment", json={**DEPLOYMENT, "id": "v1"})
    assert duplicate.status_code == 409
    assert "'v1' already exists" in duplicate.json()["detail"]
    route = {"id": "income", "spec": {"urlPrefix": "/income", "modelDeployments": [{"mdName": "v1"}]}}
    assert call(api, "POST", "/model/route", json=route).status_code == 201
    blocked = call(api, "DELETE", "/model/deployment/v1")
    assert blocked.status_code == 409
    assert "ModelRoute 'income'" in blocked.json()["detail"]


def test_auth_refuses_missing_bad_expired_and_forbidden(api: Api) -> None:
    url = f"{api.url}/api/v1/model/deployment"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer garbage"}).status_code == 401
    expired = api.signed(exp=1)
    assert httpx.get(url, headers=api.headers(expired)).json()["detail"] == "the token has expired"
    forged = httpx.get(url, headers=api.headers(api.admin[:-4] + "AAAA"))
    assert forged.status_code == 401
    wrong_audience = httpx.get(url, headers=api.headers(api.signed(aud="legion-model-api")))
    assert wrong_audience.status_code == 401
    viewer_write = call(api, "POST", "/model/deployment", api.viewer, json={**DEPLOYMENT, "id": "nope"})
    assert viewer_write.status_code == 403
    scientist_integration = call(api, "POST", "/toolchain/integration", api.scientist, json=TOOLCHAIN)
    assert scientist_integration.status_code == 403
    assert call(api, "POST", "/toolchain/integration", api.admin, json=TOOLCHAIN).status_code == 201
    assert call(api, "GET", "/toolchain/integration", api.viewer).status_code == 200


def test_model_tokens_are_scoped_capped_and_revocable(api: Api) -> None:
    issued = call(
        api,
        "POST",
        "/model/token",
        api.scientist,
        json={"models": [{"name": "census", "version": "1.0"}], "expiresIn": 60},
    )
    assert issued.status_code == 201, issued.text
    body = issued.json()
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["models"] == [{"name": "census", "version": "1.0"}]
    assert claims["aud"] == "legion-model-api"
    assert call(api, "POST", "/model/token", api.viewer, json={"models": [{"name": "x"}]}).status_code == 403
    assert call(api, "DELETE", f"/model/token/{body['tokenId']}", api.scientist).status_code == 403
    assert call(api, "DELETE", f"/model/token/{body['tokenId']}", api.admin).status_code == 200


def test_a_revoked_api_token_is_refused(api: Api) -> None:
    token = api.signed(jti="to-revoke")
    assert call(api, "GET", "/model/deployment", token).status_code == 200
    assert call(api, "DELETE", "/model/token/to-revoke").status_code == 200
    refused = call(api, "GET", "/model/deployment", token)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "the token has been revoked"


def test_openapi_document_lists_every_kind(api: Api) -> None:
    document = httpx.get(f"{api.url}/openapi.json").json()
    for path in ("/api/v1/connection", "/api/v1/model/training", "/api/v1/model/route", "/api/v1/model/token"):
        assert path in document["paths"]


def test_out_of_range_paging_and_bad_labels_are_named_422s(api: Api) -> None:
    for params, field in (({"page": 10**30}, "page"), ({"page": 10**9 + 1}, "page"), ({"size": 0}, "size"),
                          ({"labels": "not-key-value"}, "labels")):  # fmt: skip
        answer = call(api, "GET", "/model/route", params=params)
        assert answer.status_code == 422, (params, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert f"query.{field}" in answer.json()["errors"], answer.text
    assert call(api, "GET", "/model/route", params={"page": 10**9, "labels": "a=b,c.d/e="}).json() == []


def test_two_authorization_headers_are_a_400(api: Api) -> None:
    for pair in (["Bearer garbage", f"Bearer {api.admin}"], [f"Bearer {api.admin}", "Bearer garbage"]):
        answer = httpx.get(f"{api.url}/api/v1/model/route", headers=[("Authorization", value) for value in pair])
        assert answer.status_code == 400, answer.text
        assert "more than one Authorization header" in answer.json()["detail"]


def test_a_method_the_path_does_not_take_is_a_405_naming_those_it_does(api: Api) -> None:
    collection = httpx.request("TRACE", f"{api.url}/api/v1/connection", headers=api.headers(api.admin))
    assert collection.status_code == 405
    assert collection.headers["allow"] == "GET, POST"
    one = httpx.request("PATCH", f"{api.url}/api/v1/connection/x", headers=api.headers(api.admin))
    assert one.headers["allow"] == "DELETE, GET, PUT"
    assert httpx.request("TRACE", f"{api.url}/health").headers["allow"] == "GET"
    token = httpx.request("OPTIONS", f"{api.url}/api/v1/model/token/abc", headers=api.headers(api.admin))
    assert token.headers["allow"] == "DELETE"  # not the registry's GET /model/{name}/{version} it overlaps


def test_deleting_checks_references_past_a_thousand_objects(tmp_path: Path) -> None:
    """The reference check reads every route, not the first page of them: the one that uses the deployment is
    stored 1,201st (written through the store, the delete is the API's)."""
    server = start_api(tmp_path, "--runtime", "none")
    try:
        store = ResourceStore(create_engine(f"sqlite:///{tmp_path / 'legion.db'}"), Cipher([Cipher.generate_key()]))
        for number in range(1200):
            store.create(
                "ModelRoute", f"r{number:04d}", {"urlPrefix": f"/r{number}", "modelDeployments": [{"mdName": "other"}]}
            )
        store.create("ModelRoute", "zz-last", {"urlPrefix": "/last", "modelDeployments": [{"mdName": "used"}]})
        headers = {"Authorization": f"Bearer {cli_token(tmp_path, 'admin')}"}
        base = f"{server.url}/api/v1/model/deployment"
        assert httpx.post(base, headers=headers, json={"id": "used", "spec": {"image": "m"}}).status_code == 201
        blocked = httpx.delete(f"{base}/used", headers=headers, timeout=60)
        assert blocked.status_code == 409, blocked.text
        assert "ModelRoute 'zz-last'" in blocked.json()["detail"]
        store.delete("ModelRoute", "zz-last")
        assert httpx.delete(f"{base}/used", headers=headers, timeout=60).status_code == 200
    finally:
        server.stop()
