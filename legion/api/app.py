"""``create_app(settings)``: the management API's composition root.

Wires keys, the database (migrated on start), the stores, authentication and one router per resource kind, plus
model tokens, Prometheus metrics (``/metrics``) and the web dashboard (``/ui``). Auth is on unless
``settings.dev``; then every caller is an anonymous admin and the start-up log says so. A bearer token opens
everything its roles allow; the dashboard's session cookie opens reads only (``legion.api.ui.session``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request
from sqlalchemy import Engine

from legion import __version__
from legion.api import openapi, problems
from legion.api.auth import DEV_CLAIMS, Caller
from legion.api.confinement import Confinement, sandbox_for
from legion.api.feedback_routes import FeedbackMetrics, records_router
from legion.api.keys import load_keys
from legion.api.logs_routes import ReplicaLogs, logs_router
from legion.api.metrics import ApiMetrics, MetricsMiddleware, metrics_router
from legion.api.prometheus_routes import prometheus_router
from legion.api.properties_routes import properties_router
from legion.api.reconcile import DeploymentController, LoopSettings, Reconciler
from legion.api.reconcile.environments import EnvironmentBuilds
from legion.api.reconcile.images import ImageBuilds
from legion.api.reconcile.packagings import PackagingController
from legion.api.reconcile.registration import DeployedModels
from legion.api.reconcile.trainings import TrainingController
from legion.api.registry_routes import registry_router
from legion.api.resources_routes import kind_router
from legion.api.routing_routes import ChangeSignal, routing_router
from legion.api.runtime.base import Runtime
from legion.api.runtime.jobs import LocalJobs
from legion.api.runtime.limits import Limiter
from legion.api.runtime.memory import MemoryRuntime
from legion.api.runtime.sandbox import Sandbox
from legion.api.services import ModelProperties, PropertyService, ResourceService
from legion.api.settings import ApiSettings
from legion.api.storage import Cipher, ModelRegistry, ResourceStore, TokenRevocations, create_engine, migrate
from legion.api.storage.feedback import FeedbackStore
from legion.api.tokens_routes import token_router
from legion.api.ui import (
    TrafficMonitor,
    feedback_router,
    request_token,
    session_router,
    static_files,
    traffic_router,
    ui_router,
)
from legion.core.resources import KINDS, SECRET_FIELDS
from legion.core.tokens import Claims, TokenConfig, TokenIssuer, TokenVerifier, repeated_authorization

log = logging.getLogger(__name__)
DAY_S = 24 * 3600.0  # default lifetime of a model token


def make_limiter(settings: ApiSettings) -> Limiter:
    """How the local runtime holds jobs and replicas to their ``resources.limits``: cgroups where this machine lets
    the API make them (said once in the log), nothing when ``LEGION_API_ENFORCE_LIMITS=false``."""
    if not settings.enforce_limits:
        return Limiter.off("switched off (LEGION_API_ENFORCE_LIMITS=false)")
    limiter = Limiter.find()
    if limiter.hierarchies:
        versions = ", ".join(f"{c}: cgroup v{h.version}" for c, h in sorted(limiter.hierarchies.items()))
        log.info("resource limits of local jobs and replicas are enforced (%s)", versions)
    if limiter.why_not:
        log.warning("resource limits are not (all) enforced locally: %s", limiter.why_not)
    return limiter


def make_runtime(settings: ApiSettings, sandbox: Sandbox, limiter: Limiter) -> Runtime | None:
    if settings.runtime == "memory":
        return MemoryRuntime()
    if settings.runtime == "local":
        from legion.api.runtime.local import LocalRuntime  # noqa: PLC0415  # only when chosen

        # a relative image is a path in the data directory: models/<artifact> or packages/<packaging id>
        work_dir, data_dir = settings.data_dir / "runtime", settings.data_dir
        return LocalRuntime(work_dir, model_root=data_dir, sandbox=sandbox, limiter=limiter)
    return None


def add_controllers(
    reconciler: Reconciler,
    runtime: Runtime,
    settings: ApiSettings,
    store: ResourceStore,
    registry: ModelRegistry,
    *,
    sandbox: Sandbox,
    models: DeployedModels,
    limiter: Limiter,
) -> LocalJobs | None:
    """What the loop drives: deployments on ``runtime`` (registering the models they serve), and with the local
    runtime trainings and packagings as local processes (their ``LocalJobs`` is returned, for the log routes)."""
    progress_s, idle_s = reconciler.settings.progress_s, settings.scale_to_zero_idle_s
    reconciler.add(DeploymentController(runtime, store=store, progress_s=progress_s, idle_s=idle_s, models=models))
    if settings.runtime != "local":
        return None
    work_dir = settings.data_dir / "runtime"
    jobs = LocalJobs(work_dir, sandbox=sandbox, limiter=limiter)
    models_dir, packages_dir = settings.data_dir / "models", settings.data_dir / "packages"
    reconciler.add(
        TrainingController(store, registry, jobs, work_dir=work_dir, models_dir=models_dir, local_root=Path.cwd())
    )
    environments, images = EnvironmentBuilds(settings.environments), ImageBuilds(settings.images)
    reconciler.add(
        PackagingController(
            store, registry, jobs, models_dir=models_dir, packages_dir=packages_dir, environments=environments,
            images=images,
        )
    )  # fmt: skip
    return jobs


def _waker(reconciler: Reconciler | None, signal: ChangeSignal) -> Callable[[], None]:
    """Wake the loop and the routing long-polls from the request's thread (sync routes run in a worker thread)."""
    if reconciler is None:
        return signal.notify

    def wake() -> None:
        reconciler.wake_threadsafe()
        signal.notify()

    return wake


def add_feedback_store(app: FastAPI, settings: ApiSettings, engine: Engine, metrics: ApiMetrics, caller: Any) -> None:
    """Where gateways deliver records, and what reads the joined quality (dashboard, ``/metrics``)."""
    feedback = FeedbackStore(engine, retention_s=settings.feedback_retention_s)
    store_metrics = FeedbackMetrics(metrics.registry, feedback, settings.feedback_window_s)
    metrics.before_scrape.append(store_metrics.refresh)
    app.include_router(records_router(feedback, store_metrics, caller, settings.max_body_bytes))
    app.include_router(feedback_router(feedback, caller, settings.feedback_window_s))


def add_dashboard(
    app: FastAPI, settings: ApiSettings, store: ResourceStore, caller: Any, authenticate: Callable[[str], Claims]
) -> None:
    """The web dashboard (``/ui``) and the JSON it reads besides the resource routes."""
    app.include_router(traffic_router(TrafficMonitor(lambda: store.all("ModelDeployment")), caller))
    app.include_router(session_router(caller, dev=settings.dev))
    app.include_router(ui_router(authenticate, dev=settings.dev))
    app.mount("/ui/static", static_files(), name="ui-static")


def create_app(settings: ApiSettings) -> FastAPI:  # noqa: PLR0915  # the composition root wires every part in one place
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)  # keys, database, logs and every job's files: the API's user only
    keys = load_keys(settings)
    engine = create_engine(settings.resolved_database_url())
    migrate(engine)
    store = ResourceStore(engine, Cipher(list(keys.encryption_keys)), secret_fields={"Connection": SECRET_FIELDS})
    revocations = TokenRevocations(engine)
    token_config = TokenConfig(secret=keys.token_secret, max_ttl_s=settings.max_token_ttl_s)
    verifier = TokenVerifier(token_config, revocations.is_revoked)

    def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Caller:
        if len(request.headers.getlist("authorization")) > 1:
            raise repeated_authorization()
        if settings.dev:
            return Caller(DEV_CLAIMS)
        return Caller(verifier.verify(request_token(request, authorization), settings.api_audience))

    def revoke(token_id: str) -> None:
        # the token's own expiry is unknown here; keep the entry as long as any token can live
        revocations.revoke(token_id, datetime.now(UTC) + timedelta(seconds=settings.max_token_ttl_s))
        signal.notify()

    signal = ChangeSignal()
    metrics = ApiMetrics()
    sandbox = sandbox_for(settings)  # also for checking imported models, which runs their code
    limiter = make_limiter(settings) if settings.runtime == "local" else Limiter.off()
    runtime = make_runtime(settings, sandbox, limiter)
    registry = ModelRegistry(engine)
    confinement = Confinement.from_settings(settings, images=settings.runtime == "local")
    models = DeployedModels(registry, confinement.model_path)  # what deployments serve, in the registry
    reconciler: Reconciler | None = None
    jobs: LocalJobs | None = None
    if runtime is not None:
        loop_settings = LoopSettings(resync_s=settings.resync_s)
        reconciler = Reconciler(store, loop_settings, on_status=signal.notify, on_step=metrics.observe_reconcile)
        jobs = add_controllers(
            reconciler, runtime, settings, store, registry, sandbox=sandbox, models=models, limiter=limiter
        )
    managed = frozenset({"ModelDeployment"}) | (frozenset({"ModelTraining", "ModelPackaging"}) if jobs else frozenset())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        signal.bind()
        if reconciler is None or runtime is None:
            yield
            return
        stop = asyncio.Event()
        task = asyncio.create_task(reconciler.run(stop))
        try:
            yield
        finally:
            stop.set()
            await task
            if settings.stop_replicas_on_exit:
                await runtime.stop_all()
            await runtime.close()

    app = FastAPI(
        title="Legion management API", version=__version__, docs_url="/docs", redoc_url=None, lifespan=lifespan
    )
    problems.install(app)
    openapi.install(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    model_properties = ModelProperties(confinement)
    service = ResourceService(
        store,
        on_change=_waker(reconciler, signal),
        managed_kinds=managed if reconciler else frozenset(),
        confinement=confinement,
        gateway_url=settings.gateway_url,
        properties=model_properties,
    )
    for info in KINDS.values():
        app.include_router(kind_router(info, service, caller, settings.max_body_bytes))
    properties = PropertyService(store, model_properties, on_change=_waker(reconciler, signal))
    app.include_router(properties_router(properties, caller, settings.max_body_bytes))
    app.include_router(
        token_router(
            TokenIssuer(token_config), settings.model_audience, min(DAY_S, settings.max_token_ttl_s), caller, revoke
        )
    )

    # after the token routes: /model/{name}/{version} would otherwise shadow /model/token/{id}
    registry_routes = registry_router(registry, store, caller, confinement=confinement, sandbox=sandbox, models=models)
    app.include_router(registry_routes)
    app.include_router(logs_router(store, jobs, caller, runtime if isinstance(runtime, ReplicaLogs) else None))

    app.include_router(
        routing_router(store, revocations, signal, caller, reconciler.demand if reconciler else lambda _: None)
    )

    app.include_router(metrics_router(metrics, store, reconciler.queue_depth if reconciler else None, caller))
    metrics.before_scrape.append(lambda: metrics.routing_long_polls.set(signal.held))
    add_feedback_store(app, settings, engine, metrics, caller)
    app.include_router(prometheus_router(store, caller))
    add_dashboard(app, settings, store, caller, lambda token: verifier.verify(token, settings.api_audience))

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.state.store = store
    app.state.reconciler = reconciler
    app.state.routing_signal = signal
    app.state.issuer = TokenIssuer(token_config)
    if settings.dev:
        log.warning("AUTHENTICATION IS OFF (--dev): anyone who can reach %s:%s can change everything",
                    settings.host, settings.port)  # fmt: skip
    return app
