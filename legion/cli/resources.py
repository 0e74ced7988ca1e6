"""Resource commands: ``login``, ``get``, ``describe``, ``create -f``, ``apply -f``, ``delete`` and
``token create``, with Legion's short kind names (``conn``, ``ti``, ``pi``, ``train``, ``pack``, ``dep``, ``route``).

Files are checked here first (YAML syntax and every field, naming the document), so a bad file changes nothing
on the server; ``apply`` then creates or updates each object in file order and prints what changed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import click

from legion.cli.config import ClientSettings, Context, resolve, save_context
from legion.cli.output import render
from legion.cli.waiting import replicas_ready, timeout_option, wait_for, wait_option
from legion.client import LegionClient
from legion.core.errors import InvalidInputError, LegionError, NotFoundError
from legion.core.resources import KindInfo, find_kind, load_documents, parse_resource

Columns = list[tuple[str, Callable[[dict[str, Any]], Any]]]


def _spec(obj: dict[str, Any], *keys: str) -> Any:
    value: Any = obj.get("spec", {})
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _status(obj: dict[str, Any], key: str) -> Any:
    return obj.get("status", {}).get(key)


COLUMNS: dict[str, Columns] = {
    "Connection": [("ID", lambda o: o["id"]), ("TYPE", lambda o: _spec(o, "type")), ("URI", lambda o: _spec(o, "uri"))],
    "ToolchainIntegration": [("ID", lambda o: o["id"]), ("ENTRYPOINT", lambda o: _spec(o, "entrypoint")),
                             ("IMAGE", lambda o: _spec(o, "defaultImage"))],
    "PackagingIntegration": [("ID", lambda o: o["id"]), ("ENTRYPOINT", lambda o: _spec(o, "entrypoint")),
                             ("IMAGE", lambda o: _spec(o, "defaultImage"))],
    "ModelTraining": [("ID", lambda o: o["id"]), ("STATE", lambda o: _status(o, "state")),
                      ("MODEL", lambda o: f"{_spec(o, 'model', 'name')}:{_spec(o, 'model', 'version')}"),
                      ("TOOLCHAIN", lambda o: _spec(o, "toolchain"))],
    "ModelPackaging": [("ID", lambda o: o["id"]), ("STATE", lambda o: _status(o, "state")),
                       ("ARTIFACT", lambda o: _spec(o, "artifactName")),
                       ("INTEGRATION", lambda o: _spec(o, "integrationName"))],
    "ModelDeployment": [("ID", lambda o: o["id"]), ("STATE", lambda o: _status(o, "state")),
                        ("READY", replicas_ready),
                        ("IMAGE", lambda o: _spec(o, "image")), ("URL", lambda o: _status(o, "serviceURL"))],
    "ModelRoute": [("ID", lambda o: o["id"]), ("STATE", lambda o: _status(o, "state")),
                   ("URL PREFIX", lambda o: _spec(o, "urlPrefix")),
                   ("DEPLOYMENTS", lambda o: ", ".join(f"{d['mdName']}:{d.get('weight', 100)}"
                                                       for d in _spec(o, "modelDeployments") or []))],
}  # fmt: skip

output_option = click.option(
    "-o", "--output", "fmt", default="table", show_default=True, help="table, yaml, json or jsonpath=EXPR."
)


def client() -> LegionClient:
    target = resolve(ClientSettings())
    return LegionClient(target.url, target.token)


def read_file(path: str) -> list[dict[str, Any]]:
    """The documents of a file (``-`` for standard input), each checked; every error names the file, and the line
    of a syntax error or the position of a bad document."""
    source = "standard input" if path == "-" else path
    text = sys.stdin.read() if path == "-" else _read_text(Path(path))
    try:
        documents = load_documents(text)
    except LegionError as exc:
        raise type(exc)(f"{source}: {exc.detail}", fields=exc.fields) from None
    if not documents:
        raise InvalidInputError(f"{source} holds no resources")
    for index, document in enumerate(documents, start=1):
        try:
            parse_resource(document)
        except LegionError as exc:
            error_class: type[LegionError] = type(exc)
            raise error_class(f"{source}, document {index}: {exc.detail}", fields=exc.fields) from None
    return documents


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"no such file: {path}") from None
    except UnicodeDecodeError:
        raise InvalidInputError(f"{path} is not UTF-8 text") from None


@click.command()
@click.option("--url", required=True, help="Management API URL, e.g. http://127.0.0.1:5080.")
@click.option("--token", default=None, help="API token (see `legion api token`).")
@click.option("--context", "name", default="default", show_default=True, help="Name to save this context under.")
@click.option("--gateway", default=None, help="Gateway URL that `legion model invoke` calls through.")
def login(url: str, token: str | None, name: str, gateway: str | None) -> None:
    """Check that the API answers with this token, then save it as the current context."""
    with LegionClient(url, token) as session:
        session.list("/model/deployment", size=1)
    save_context(ClientSettings().config_file, name, Context(url, token, gateway))
    click.echo(f"logged in to {url} as context {name!r}")


REGISTRY_NOUNS: Final = frozenset({"model", "models", "mv"})
"""What ``legion get`` takes for the model registry, which is not a resource kind (``legion model list``)."""


@click.command()
@click.argument("kind")
@click.argument("resource_id", required=False)
@click.option("-l", "--labels", default=None, help="Only objects with these labels: key=value,key2=value2.")
@output_option
def get(kind: str, resource_id: str | None, labels: str | None, fmt: str) -> None:
    """List the objects of KIND, or show one by id; ``get model [NAME]`` lists the registry's model versions."""
    if kind.lower() in REGISTRY_NOUNS:
        from legion.cli.model import show_models  # noqa: PLC0415  # the model commands import the SDK: only when asked

        show_models(resource_id, fmt)
        return
    info = find_kind(kind)
    with client() as session:
        if resource_id:
            objects = [session.get(info.path, resource_id)]
        else:
            wanted = dict(pair.split("=", 1) for pair in labels.split(",")) if labels else None
            objects = session.list(info.path, labels=wanted, size=1000)
    render(objects, fmt, COLUMNS[info.name], click.echo, single=resource_id is not None)


@click.command()
@click.argument("kind")
@click.argument("resource_id")
def describe(kind: str, resource_id: str) -> None:
    """Show one object in full, status included."""
    info = find_kind(kind)
    with client() as session:
        render([session.get(info.path, resource_id)], "yaml", [], click.echo, single=True)


@click.command()
@click.option("-f", "--filename", "path", required=True, help="YAML or JSON file, - for standard input.")
def create(path: str) -> None:
    """Create every object of a file, in file order."""
    documents = read_file(path)
    with client() as session:
        for document in documents:
            info = find_kind(document["kind"])
            session.create(info.path, document)
            click.echo(f"{info.name} {document['id']} created")


@click.command()
@click.option("-f", "--filename", "path", required=True, help="YAML or JSON file, - for standard input.")
@wait_option
@timeout_option
def apply(path: str, wait: bool, timeout: float) -> None:
    """Create or update every object of a file, in file order; print what changed."""
    documents = read_file(path)
    counts = {"created": 0, "changed": 0, "unchanged": 0}
    with client() as session:
        for document in documents:
            info: KindInfo = find_kind(document["kind"])
            outcome, _ = session.apply(info.path, document)
            counts[outcome] += 1
            click.echo(f"{info.name} {document['id']} {outcome}")
        click.echo(", ".join(f"{n} {what}" for what, n in counts.items()))
        if wait:
            for document in documents:
                wait_for(session, find_kind(document["kind"]).name, str(document["id"]), timeout)


@click.command()
@click.argument("kind", required=False)
@click.argument("resource_id", required=False)
@click.option("-f", "--filename", "path", default=None, help="Delete the objects of this file instead.")
def delete(kind: str | None, resource_id: str | None, path: str | None) -> None:
    """Delete one object (KIND ID), or every object of a file (in reverse order).

    As ``kubectl delete -f``: an object of the file that does not exist is reported and passed over, the others are
    deleted, then a count is printed and the command fails (exit code 3, not found) if any was missing.
    """
    if path:
        targets = [(find_kind(d["kind"]), str(d["id"])) for d in reversed(read_file(path))]
    elif kind and resource_id:
        targets = [(find_kind(kind), resource_id)]
    else:
        raise click.UsageError("give KIND and ID, or -f FILE")
    missing: list[str] = []
    with client() as session:
        for info, ident in targets:
            try:
                session.delete(info.path, ident)
            except NotFoundError:
                if not path:
                    raise
                missing.append(f"{info.name} {ident}")
                click.echo(f"{info.name} {ident} not found")
                continue
            click.echo(f"{info.name} {ident} deleted")
    if path:
        click.echo(f"{len(targets) - len(missing)} deleted, {len(missing)} not found")
        if missing:
            listed = ", ".join(missing)
            source = "standard input" if path == "-" else path
            raise NotFoundError(f"{len(missing)} of the {len(targets)} objects of {source} did not exist: {listed}")


@click.group("token")
def token() -> None:
    """Model API tokens."""


@token.command("create")
@click.option("--model", "models", multiple=True, required=True, metavar="NAME[:VERSION]", help="Model it opens.")
@click.option("--expires-in", type=float, default=None, help="Lifetime in seconds (capped by the server).")
@output_option
def token_create(models: tuple[str, ...], expires_in: float | None, fmt: str) -> None:
    """Issue a model API token scoped to models (and versions)."""
    scopes = []
    for model in models:
        name, _, version = model.partition(":")
        scopes.append({"name": name, "version": version or "*"})
    with client() as session:
        issued = session.model_token(scopes, expires_in)
    if fmt == "table":
        click.echo(issued["token"])
    else:
        render([issued], fmt, [], click.echo, single=True)


@click.command()
@click.argument("kind")
@click.argument("resource_id")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the job ends.")
def logs(kind: str, resource_id: str, follow: bool) -> None:
    """Print the log of a training, packaging or deployment (``train``/``pack``/``dep``: its replicas' output)."""
    info = find_kind(kind)
    if info.name not in ("ModelTraining", "ModelPackaging", "ModelDeployment"):
        raise InvalidInputError(f"{info.name} objects have no log; trainings, packagings and deployments do")
    with client() as session:
        for line in session.log_lines(info.path, resource_id, follow=follow):
            click.echo(line)


COMMANDS = [login, get, describe, create, apply, delete, logs, token]
