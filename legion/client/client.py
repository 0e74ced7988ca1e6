"""``LegionClient``: one method per operation of the management API.

Every answer that is not a success becomes the ``LegionError`` subclass of its status (``core.errors``'
``error_for_status``) with the server's ``detail`` and ``errors``; a server that cannot be reached is an
``UnavailableError`` naming the URL.

    client = LegionClient("http://127.0.0.1:5080", token)
    client.create("/model/deployment", {"kind": "ModelDeployment", "id": "census", "spec": {...}})
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from legion.core.errors import ConflictError, LegionError, UnavailableError, error_for_status

API_PREFIX = "/api/v1"


def error_from(response: httpx.Response, fallback: str | None = None) -> LegionError:
    """The Legion error a failed answer stands for; ``fallback`` is its detail when the body gives none."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    detail = body.get("detail") or body.get("error") if isinstance(body, dict) else None
    fields = body.get("errors") if isinstance(body, dict) and isinstance(body.get("errors"), dict) else None
    error_type = error_for_status(response.status_code)
    return error_type(str(detail or fallback or f"the server answered {response.status_code}"), fields=fields)


class LegionClient:
    """A session with the management API at ``url``."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LegionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, f"{API_PREFIX}{path}", **kwargs)
        except httpx.TransportError as exc:
            raise UnavailableError(f"cannot reach the Legion API at {self.url}: {exc}") from None
        if response.is_error:
            raise error_from(response)
        return response

    # --- resources ------------------------------------------------------------------------------------
    def list(self, path: str, *, labels: Mapping[str, str] | None = None, page: int = 0, size: int = 100) -> list[Any]:
        params: dict[str, Any] = {"page": page, "size": size}
        if labels:
            params["labels"] = ",".join(f"{k}={v}" for k, v in labels.items())
        items: list[Any] = self.request("GET", path, params=params).json()
        return items

    def get(self, path: str, resource_id: str) -> dict[str, Any]:
        document: dict[str, Any] = self.request("GET", f"{path}/{resource_id}").json()
        return document

    def create(self, path: str, document: Mapping[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self.request("POST", path, json=dict(document)).json()
        return created

    def update(self, path: str, document: Mapping[str, Any]) -> dict[str, Any]:
        updated: dict[str, Any] = self.request("PUT", f"{path}/{document['id']}", json=dict(document)).json()
        return updated

    def apply(self, path: str, document: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """Create the object, or update it when it exists: ``("created" | "changed" | "unchanged", object)``."""
        try:
            return "created", self.create(path, document)
        except ConflictError:
            before = self.get(path, str(document["id"]))
            after = self.update(path, document)
            return ("unchanged" if before.get("spec") == after.get("spec") else "changed"), after

    def delete(self, path: str, resource_id: str) -> None:
        self.request("DELETE", f"{path}/{resource_id}")

    def log_lines(self, path: str, resource_id: str, *, follow: bool = False) -> Iterator[str]:
        """The lines of a training's or packaging's log; with ``follow``, new ones until the job ends."""
        url = f"{API_PREFIX}{path}/{resource_id}/log"
        timeout = httpx.Timeout(self._http.timeout.connect, read=None) if follow else self._http.timeout
        try:
            with self._http.stream(
                "GET", url, params={"follow": "true" if follow else "false"}, timeout=timeout
            ) as answer:
                if answer.is_error:
                    answer.read()
                    raise error_from(answer)
                yield from answer.iter_lines()
        except httpx.TransportError as exc:
            raise UnavailableError(f"cannot reach the Legion API at {self.url}: {exc}") from None

    # --- a deployment's model properties ---------------------------------------------------------------
    def properties(self, deployment_id: str) -> builtins.list[dict[str, Any]]:
        """Every model property of the deployment: ``[{"name", "value", "modelValue"}]``."""
        found: builtins.list[dict[str, Any]] = self.request("GET", f"/model/deployment/{deployment_id}/property").json()
        return found

    def get_property(self, deployment_id: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.request("GET", _property_path(deployment_id, name)).json()
        return found

    def set_property(self, deployment_id: str, name: str, value: Any) -> dict[str, Any]:
        """Set the property for every replica of the deployment; ``value`` as JSON (text is read by its type)."""
        changed: dict[str, Any] = self.request("PUT", _property_path(deployment_id, name), json=value).json()
        return changed

    # --- tokens and models ----------------------------------------------------------------------------
    def model_token(self, models: builtins.list[dict[str, str]], expires_in_s: float | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"models": models}
        if expires_in_s is not None:
            body["expiresIn"] = expires_in_s
        issued: dict[str, Any] = self.request("POST", "/model/token", json=body).json()
        return issued

    def revoke_token(self, token_id: str) -> None:
        self.request("DELETE", f"/model/token/{token_id}")

    def models(self, name: str | None = None) -> builtins.list[dict[str, Any]]:
        found: builtins.list[dict[str, Any]] = self.request(
            "GET", "/model", params={"name": name} if name else {}
        ).json()
        return found

    def deployment_model(self, deployment_id: str) -> dict[str, Any]:
        """The model the ModelDeployment serves: its registry entry (manifest, metrics, source, deployments) and
        whether it is ``registered``; ``NotFoundError`` for an unknown deployment or one with no known model."""
        ident = quote(deployment_id, safe="")  # a name a user typed stays one path segment
        described: dict[str, Any] = self.request("GET", f"/model/deployment/{ident}/model").json()
        return described

    def import_model(self, path: str) -> dict[str, Any]:
        imported: dict[str, Any] = self.request("POST", "/model", json={"path": path}).json()
        return imported


def _property_path(deployment_id: str, name: str) -> str:
    return f"/model/deployment/{quote(deployment_id, safe='')}/property/{quote(name, safe='')}"
