"""A gateway's routing long-poll never holds up the API's shutdown: SIGTERM answers it at once, with a 503 (not an
unchanged snapshot, which a gateway would ask for again at once, in a tight loop until the API is gone)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx

from tests.api.conftest import start_api
from tests.support.server import wait_until


def test_a_held_long_poll_is_answered_when_the_api_is_told_to_stop(tmp_path: Path) -> None:
    server = start_api(tmp_path, "--runtime", "none", "--dev")
    answers: list[httpx.Response | Exception] = []
    try:
        url = f"{server.url}/api/v1/routing"
        etag = httpx.get(url).json()["etag"]

        def poll() -> None:
            try:  # longer than uvicorn's 10 s graceful timeout: without the release it would be cut off
                answers.append(httpx.get(url, params={"since": etag, "wait": 60}, timeout=90))
            except httpx.HTTPError as exc:
                answers.append(exc)

        poller = threading.Thread(target=poll)
        poller.start()
        wait_until(lambda: "legion_api_routing_long_polls 1.0" in httpx.get(f"{server.url}/metrics").text, 30,
                   "the long-poll to be held")  # fmt: skip
        server.process.send_signal(signal.SIGTERM)
        poller.join(90)
    finally:
        server.stop()

    [answer] = answers
    assert isinstance(answer, httpx.Response), answer
    assert answer.status_code == 503, answer.text
    assert answer.json()["detail"] == "the management API is stopping; ask again later"
