"""A real S3 server for tests: moto's, in a thread, on 127.0.0.1 and a port the OS picked."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


@contextmanager
def moto_s3(bucket: str = "predictions") -> Iterator[tuple[str, Any]]:
    """The server's URL and a boto3 client of it, with ``bucket`` created."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        url = f"http://127.0.0.1:{server._server.server_port}"  # type: ignore[union-attr]  # the bound port
        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", **CREDENTIALS)
        client.create_bucket(Bucket=bucket)
        yield url, client
    finally:
        server.stop()
