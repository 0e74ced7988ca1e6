"""The baseline server: the least an HTTP server can do to answer Legion's era-b invoke with one pipeline.

``benchmarks/serve.py`` runs it as ``python benchmarks/minimal_app.py --model census.joblib --port 0`` and
compares Legion's model server with it. It is a raw ASGI callable on uvicorn (one worker, httptools, uvloop,
no access log) that reads ``{"columns": [...], "data": [[...], ...]}`` with orjson, builds a pandas
DataFrame, calls the pipeline's ``predict_proba`` once and answers ``{"prediction": [[...]], "columns":
[...]}`` with orjson. Nothing else: no validation, no metrics, no logging, no batching, no error handling
(a bad body is uvicorn's 500). Keep it that way; every line added here makes the baseline less honest.

``GET`` on any path answers 200, which is what the benchmark polls for readiness.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import joblib
import orjson
import pandas as pd
import uvicorn

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_CONTENT_TYPE = (b"content-type", b"application/json")


class MinimalApp:
    """A raw ASGI app around one fitted scikit-learn pipeline."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.labels = [str(label) for label in pipeline.classes_]

    def predict_body(self, body: bytes) -> bytes:
        """The whole per-request work of the app, callable in process to time it apart from HTTP."""
        request = orjson.loads(body)
        frame = pd.DataFrame(request["data"], columns=request["columns"])
        proba = self.pipeline.predict_proba(frame)
        return orjson.dumps({"prediction": proba, "columns": self.labels}, option=orjson.OPT_SERIALIZE_NUMPY)

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan: nothing to set up
            return
        if scope["method"] == "GET":
            answer = b"{}"
        else:
            chunks = []
            more = True
            while more:
                message = await receive()
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            answer = self.predict_body(b"".join(chunks))
        # A length, not chunked encoding: the single-write answer any real framework gives.
        headers = [_CONTENT_TYPE, (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


def main() -> None:
    parser = argparse.ArgumentParser(description="The minimal baseline server of benchmarks/serve.py.")
    parser.add_argument("--model", type=Path, required=True, help="a joblib file of a fitted pipeline")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port; the bound one is logged")
    args = parser.parse_args()
    app = MinimalApp(joblib.load(args.model))
    uvicorn.run(
        app, host=args.host, port=args.port, workers=1, loop="uvloop", http="httptools",
        lifespan="off", access_log=False, log_level="info",
    )  # fmt: skip


if __name__ == "__main__":
    main()
