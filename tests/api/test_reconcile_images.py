"""``plan_image``: what a ``docker-rest`` packaging asks for, as one plan (reference, registry, credentials), and
the reasons it gives; on the summation model's real manifest, without the container tools."""

from __future__ import annotations

from pathlib import Path

import pytest

from legion.api.reconcile.images import failure_reason, plan_image, render_image_name
from legion.core.errors import ImageBuildError, InvalidInputError, NotFoundError, UnauthorizedError
from legion.core.resources import Connection, ConnectionSpec, ModelPackagingSpec, PackagingTarget
from legion.model.manifest import Manifest

PASSWORD = "never-shown-4711"


def spec(arguments: dict[str, object], connection: str = "registry") -> ModelPackagingSpec:
    targets = [PackagingTarget(name="docker-push", connection_name=connection)]
    return ModelPackagingSpec(
        artifact_name="summation-1.0", integration_name="docker-rest", arguments=arguments, targets=targets
    )


def docker(uri: str, username: str | None = "u", password: str | None = PASSWORD) -> Connection:
    return Connection(id="registry", spec=ConnectionSpec(type="docker", uri=uri, username=username, password=password))


def test_the_image_name_is_filled_from_the_manifest_under_the_connections_registry(summation_model_dir: Path) -> None:
    plan = plan_image(spec({"imageName": "legion/{name}:{version}"}), summation_model_dir,
                      lambda _: docker("http://127.0.0.1:5999/"))  # fmt: skip
    assert plan.request.tag == plan.target.reference == "127.0.0.1:5999/legion/summation:1.0"
    assert plan.target.plain_http and plan.target.registry == "127.0.0.1:5999"
    assert plan.target.credentials is not None and plan.target.credentials.password == PASSWORD
    assert PASSWORD not in repr(plan)
    assert plan.request.base_image is None


def test_a_namespace_in_the_uri_tls_no_credentials_and_a_base_image(summation_model_dir: Path) -> None:
    arguments = {"imageName": "{name}", "baseImage": "localhost/python:3.11"}
    plan = plan_image(spec(arguments), summation_model_dir, lambda _: docker("https://reg.example/team", None, None))
    assert plan.target.reference == "reg.example/team/summation"
    assert not plan.target.plain_http and plan.target.credentials is None
    assert plan.request.base_image == "localhost/python:3.11"


def test_only_name_and_version_are_placeholders(summation_model_dir: Path) -> None:
    manifest = Manifest.read(summation_model_dir)
    assert render_image_name("m/{name}-{version}", manifest) == "m/summation-1.0"
    for bad in ("m/{model}", "m/{name", "m/{}"):
        with pytest.raises(InvalidInputError) as refused:
            render_image_name(bad, manifest)
        assert "spec.arguments.imageName" in refused.value.fields


def test_a_missing_or_foreign_connection_is_named(summation_model_dir: Path) -> None:
    with pytest.raises(NotFoundError, match="Connection 'registry' does not exist"):
        plan_image(spec({"imageName": "m"}), summation_model_dir, lambda _: None)
    bucket = Connection(id="registry", spec=ConnectionSpec(type="s3", uri="s3://b"))
    with pytest.raises(InvalidInputError, match="of type s3, not docker"):
        plan_image(spec({"imageName": "m"}), summation_model_dir, lambda _: bucket)


def test_a_refused_push_names_the_registry_and_connection(summation_model_dir: Path) -> None:
    plan = plan_image(spec({"imageName": "m"}), summation_model_dir, lambda _: docker("127.0.0.1:5999"))
    reason = failure_reason(plan, UnauthorizedError("the registry refused the credentials: podman push ..."))
    assert reason.startswith("the registry 127.0.0.1:5999 refused the credentials of connection 'registry'")
    assert failure_reason(plan, ImageBuildError("pip failed")) == "pip failed"
