"""HAProxy as a reference proxy in front of the same replicas, configured from the gateway's routing table.

Used by ``benchmarks/gateway.py`` only, to say what a proxy written in C costs on the same path; it is a
measurement, not a way to run Legion. ``haproxy_config(routing, ...)`` turns a routing snapshot (the JSON of
``GET /api/v1/routing`` or of ``legion gateway --routing-file``) into a configuration that does what the gateway
does on ``/model/<deployment>/<rest>``: strip the prefix, round robin over the deployment's ready replicas on
kept connections, and answer 404 for anything else. With ``secret`` it also checks the bearer token as far as
HAProxy 2.6's JWT converters can: the HS256 signature (``jwt_verify``), the algorithm, ``exp``, ``nbf``, ``iss``
and ``aud``. It does not check the token's model scopes or the revocation list, and it adds no ``Request-ID``,
metrics or access log: it does less than the gateway, so it is a lower bound on what a proxy must cost.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def haproxy_binary() -> tuple[str | None, str]:
    """The ``haproxy`` binary and its version line, or ``None`` and why it cannot be used."""
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if shutil.which(p)), None
    )
    if found is None:
        return None, "haproxy is not installed (apt-get install -y haproxy)"
    done = subprocess.run([found, "-v"], capture_output=True, text=True, timeout=30, check=False)
    version = (done.stdout.splitlines() or ["haproxy, version unknown"])[0]
    match = re.search(r"version (\d+)\.(\d+)", version)
    if match is None or (int(match.group(1)), int(match.group(2))) < (2, 5):
        return None, f"haproxy 2.5 or later is needed for its JWT converters, found: {version}"
    return found, version


def _quoted(value: str) -> str:
    if any(c in value for c in "\"\\\n\r'"):
        raise ValueError(f"not usable in an HAProxy configuration: {value!r}")
    return f'"{value}"'


def haproxy_config(
    routing: Mapping[str, Any],
    *,
    host: str,
    port: int,
    secret: str | None,
    issuer: str | None = "legion",
    audience: str | None = "legion-model-api",
    threads: int = 1,
) -> str:
    """An HAProxy configuration serving ``/model/<deployment>/`` of ``routing`` on ``host:port``."""
    lines = [
        "global",
        f"    nbthread {threads}",
        "    tune.bufsize 65536",
        "defaults",
        "    mode http",
        "    option http-keep-alive",
        "    http-reuse always",
        "    timeout connect 2s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout http-keep-alive 60s",
        "frontend gateway",
        f"    bind {host}:{port}",
        "    monitor-uri /healthcheck",
    ]
    if secret is not None:
        deny = "    http-request deny deny_status 401"
        lines += [
            "    http-request set-var(txn.bearer) http_auth_bearer",
            f"{deny} unless {{ var(txn.bearer) -m found }}",
            f"{deny} unless {{ var(txn.bearer),jwt_header_query('$.alg') -m str HS256 }}",
            f"{deny} unless {{ var(txn.bearer),jwt_verify(HS256,{_quoted(secret)}) -m int 1 }}",
            "    http-request set-var(txn.now) date()",
            "    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')",
            "    http-request set-var(txn.nbf) var(txn.bearer),jwt_payload_query('$.nbf','int')",
            f"{deny} unless {{ var(txn.exp),sub(txn.now) -m int gt 0 }}",
            f"{deny} if {{ var(txn.nbf),sub(txn.now) -m int gt 0 }}",
        ]  # fmt: skip
        if issuer is not None:
            lines.append(f"{deny} unless {{ var(txn.bearer),jwt_payload_query('$.iss') -m str {_quoted(issuer)} }}")
        if audience is not None:
            lines.append(f"{deny} unless {{ var(txn.bearer),jwt_payload_query('$.aud') -m str {_quoted(audience)} }}")
    backends: list[str] = []
    for deployment in routing.get("deployments", []):
        endpoints = [e for e in deployment.get("endpoints", []) if e.startswith("http://")]
        if not endpoints:
            continue
        name = _NAME.sub("_", deployment["id"])
        prefix = f"/model/{deployment['id']}"
        lines.append(f"    use_backend md_{name} if {{ path_beg {_quoted(prefix + '/')} }}")
        backends += [
            f"backend md_{name}",
            "    balance roundrobin",
            f"    http-request replace-path ^{re.escape(prefix)}(/.*) \\1",
        ]
        for index, endpoint in enumerate(endpoints):
            backends.append(f"    server r{index} {endpoint.removeprefix('http://').rstrip('/')}")
    lines.append("    default_backend not_found")
    backends += ["backend not_found", "    http-request return status 404 content-type application/json "
                 "string '{\"error\": \"not found\"}'"]  # fmt: skip
    return "\n".join(lines + backends) + "\n"
