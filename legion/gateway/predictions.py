"""Prediction logging in the gateway (Legion's FluentD role): which calls are logged, what goes in the record, and
where the records go.

``PredictionRecorder.prediction(call)`` runs in the request path after the replica answered and before the caller
gets the answer: it appends the call (a ``feedback.entries.ModelCall``) as it is (``entries.prediction``: no
decoding, no JSON) to the gateway's ``PredictionLog``, in one ``write`` with the calls answered in the same turn
of the event loop, and returns after that write, so a kill -9 after the answer loses nothing. A shipper process
makes its ``request_response`` and ``response_body`` records and delivers them to the configured sink
(``make_sink``: a local directory in Legion's layout by default, S3 or Fluentd) and, when the routing comes from
the management API, to its feedback store (``ApiRecordsSink``), which joins feedback to predictions. A model
call is logged when its path is a prediction (``invoke``, ``batch``, ``infer``, ``invocations``, ``predict``) and
its deployment did not switch logging off (``spec.predictionLogging: false``); ``info``, metadata and health
calls are not predictions.

The model name and version of a record are what the replica said in ``Model-Name``/``Model-Version`` (the
deployment's, when it said nothing), so a route split between versions logs each call under its own version.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from typing import Final

import httpx
import orjson

from legion.core.errors import InvalidInputError
from legion.feedback import entries
from legion.feedback.entries import ModelCall
from legion.feedback.log import FanOutSink, PredictionLog
from legion.feedback.records import Encoded
from legion.feedback.sinks import FluentdSink, LocalSink, S3Sink, Sink
from legion.gateway.feedback import FeedbackRecord
from legion.gateway.settings import GatewaySettings
from legion.gateway.sources import ApiTokens

log = logging.getLogger(__name__)

PREDICTION_WORDS: Final = frozenset({b"invoke", b"batch", b"infer", b"invocations", b"predict"})
RECORDS_PATH: Final = "/api/v1/feedback/records"


def is_prediction(path: bytes) -> bool:
    """A model call that makes a prediction (``/api/model/invoke``, ``/v2/models/m/infer``, ``/invocations``...)."""
    return _known_prediction(path) if len(path) <= 256 else _prediction(path)


def _prediction(path: bytes) -> bool:
    return any(part in PREDICTION_WORDS for part in path.split(b"?", 1)[0].split(b"/"))


# a gateway serves a handful of paths, each asked about on every request (short ones only: bounded memory)
_known_prediction = functools.lru_cache(maxsize=1024)(_prediction)


class ApiRecordsSink:
    """The management API's feedback store, ``POST /api/v1/feedback/records`` in chunks (called by the shipper's
    thread, so it is synchronous)."""

    name = "api"

    def __init__(self, api_url: str, tokens: ApiTokens, *, chunk: int = 500, timeout_s: float = 10.0) -> None:
        self.url = api_url.rstrip("/") + RECORDS_PATH
        self.tokens = tokens
        self.chunk = chunk
        self._client = httpx.Client(timeout=timeout_s, trust_env=False)

    def deliver(self, records: Sequence[Encoded]) -> None:
        for start in range(0, len(records), self.chunk):
            chunk = records[start : start + self.chunk]
            answer = self._post(chunk)
            if answer.status_code == 400:  # a record that is not JSON (a broken model answer): send the rest
                valid = [record for record in chunk if _parses(record)]
                if len(valid) < len(chunk):
                    log.warning("dropping %d records the feedback store cannot read", len(chunk) - len(valid))
                    answer = self._post(valid)
            if answer.status_code != 200:
                raise ConnectionError(f"the feedback store answered {answer.status_code}: {answer.text[:200]}")

    def close(self) -> None:
        self._client.close()

    def _post(self, records: Sequence[Encoded]) -> httpx.Response:
        return self._client.post(
            self.url,
            content=b"[" + b",".join(record.json for record in records) + b"]",  # as the gateway wrote them
            headers={"Authorization": f"Bearer {self.tokens.current()}", "Content-Type": "application/json"},
        )


def _parses(record: Encoded) -> bool:
    try:
        record.value()
    except orjson.JSONDecodeError:
        return False
    return True


def make_sink(settings: GatewaySettings, writer: int) -> Sink:
    """The configured sink, plus the API's feedback store when the routing comes from the API."""
    sinks: list[Sink] = []
    if settings.records.sink == "local":
        sinks.append(LocalSink(settings.records.dir.expanduser(), writer))
    elif settings.records.sink == "s3":
        s3 = settings.records.s3
        if not s3.bucket:
            raise InvalidInputError("the s3 log sink needs a bucket (--log-s3-bucket)")
        sinks.append(S3Sink.from_settings(
            s3.bucket, prefix=s3.prefix, endpoint_url=s3.endpoint_url, region=s3.region,
            key_id=s3.key_id.get_secret_value() if s3.key_id else None,
            key_secret=s3.key_secret.get_secret_value() if s3.key_secret else None,
            writer=writer,
        ))  # fmt: skip
    elif settings.records.sink == "fluentd":
        sinks.append(
            FluentdSink(settings.records.fluentd.host, settings.records.fluentd.port, settings.records.fluentd.tag)
        )
    if settings.records.feedback_store and settings.routing.api_url and settings.routing.routing_file is None:
        token = settings.routing.api_token.get_secret_value() if settings.routing.api_token else None
        secret = settings.hs256_secret() if token is None else None
        sinks.append(ApiRecordsSink(settings.routing.api_url, ApiTokens(token, secret, settings.routing.api_audience)))
    if not sinks:
        raise InvalidInputError("prediction logging is on but has nowhere to go: name a log sink")
    return sinks[0] if len(sinks) == 1 else FanOutSink(sinks)


class PredictionRecorder:
    """Turns a model call and its answer into records in ``log``; also the gateway's ``FeedbackSink``."""

    def __init__(self, log: PredictionLog, on_drop: Callable[[int], object] | None = None) -> None:
        """``on_drop(n)`` is told of every ``n`` predictions dropped (the gateway counts them in its metrics)."""
        self.log = log
        self.on_drop = on_drop
        self.dropped = 0
        self._entries: list[bytes] = []

    @classmethod
    def open(cls, settings: GatewaySettings, on_drop: Callable[[int], object] | None = None) -> PredictionRecorder:
        return cls(PredictionLog.open(
            settings.records.buffer_dir.expanduser(), functools.partial(make_sink, settings),
            max_bytes=settings.records.buffer_max_bytes,
        ), on_drop)  # fmt: skip

    async def prediction(self, call: ModelCall) -> None:
        """Log one model call; return once it is in the buffer (never raises, never waits for more than that).

        The calls answered in one turn of the event loop are written together: each yields once after adding its
        entry, and the first to resume writes every entry added so far. At concurrency 32 the replica answers a
        batch of 32 at once, and one ``write`` for several costs what one costs alone (benchmarks/gateway.py,
        logging on/off at c32, on a busier machine: 0.90 with a ``write`` per call, 0.93-0.97 so; a future per
        call, resolved by a write scheduled for the next turn, took a turn more and measured 0.93-0.95. In the
        running gateway, CPU per request: a ``write`` per call without the yield cost 5 us more than this, and a
        copy into a shared mapping of the segment 10 us more, its fresh pages faulting in)."""
        try:  # nothing here may fail the prediction
            entry = entries.prediction(call)
        except Exception as exc:
            self._drop(1, exc)
            return
        self._entries.append(entry)
        await asyncio.sleep(0)  # the other calls of this turn add theirs
        self.flush()

    def flush(self) -> None:
        """Write the entries added so far, in one ``write``."""
        if not self._entries:
            return
        batch, self._entries = self._entries, []
        try:  # a full disk must not fail the predictions
            if not self.log.predictions(batch):
                self._drop(len(batch))
        except Exception as exc:
            self._drop(len(batch), exc)

    def _drop(self, count: int, error: Exception | None = None) -> None:
        if not self.dropped:
            reason = "the buffer is full" if error is None else "they could not be written"
            log.error("dropping prediction records (%s); legion_gateway_prediction_log_dropped_total counts them",
                      reason, exc_info=error)  # fmt: skip
        self.dropped += count
        if self.on_drop is not None:
            self.on_drop(count)

    async def record(self, record: FeedbackRecord) -> None:
        """The gateway's ``FeedbackSink``: the feedback record goes into the same buffer; a full one is a 503."""
        model = (record.model_name, record.model_version) if record.model_name and record.model_version else None
        if not self.log.feedback(
            request_id=record.request_id, deployment=record.deployment, model=model, payload=record.payload
        ):
            raise OSError("the prediction log's buffer is full")

    async def close(self) -> None:
        self.flush()  # the entry of a call cancelled while it yielded
        await asyncio.to_thread(self.log.close)
