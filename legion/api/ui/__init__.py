"""The web dashboard at ``/ui``, served by the management API behind the same auth, and the JSON it reads.

Owns: the pages and their static assets (``static/``: plain HTML, one small JS file per job, SVG charts; no CDN,
no build step), the browser session (``session``: an API token kept in an HttpOnly, SameSite=Strict cookie and
verified exactly like a bearer token; it opens read-only requests only), live traffic per deployment scraped from
its replicas' ``/metrics`` (``traffic``), and the seam where online quality and logged predictions will come from
(``feedback``: empty until the feedback store exists).

Does not belong here: resource CRUD (the kind routers), the model registry, job logs (the dashboard reads those
through their own ``/api/v1`` routes, with the cookie), Prometheus metrics of the API (``legion.api.metrics``).
"""

from __future__ import annotations

from legion.api.ui.feedback import FeedbackReader, NoFeedback, PredictionRecord, VersionQuality, feedback_router
from legion.api.ui.pages import static_files, ui_router
from legion.api.ui.session import SESSION_COOKIE, request_token, session_router
from legion.api.ui.traffic import TrafficMonitor, traffic_router

__all__ = [
    "SESSION_COOKIE",
    "FeedbackReader",
    "NoFeedback",
    "PredictionRecord",
    "TrafficMonitor",
    "VersionQuality",
    "feedback_router",
    "request_token",
    "session_router",
    "static_files",
    "traffic_router",
    "ui_router",
]
