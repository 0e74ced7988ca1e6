"""The resource vocabulary: every kind of DESIGN §2, as the management API, its storage, the CLI and YAML files see it.

Every resource is one envelope ``{kind, id, metadata: {labels, createdAt, updatedAt}, spec, status}``, camelCase on
the wire and snake_case in Python, with Legion's (ODAHU-flow's) field names::

    kind: ModelRoute
    id: income
    spec:
      urlPrefix: /income
      modelDeployments:
        - {mdName: income-v1, weight: 90}
        - {mdName: income-v2, weight: 10}

    >>> [route] = [parse_resource(d) for d in load_documents(text)]   # doctest: +SKIP
    >>> to_document(route)["spec"]["modelDeployments"][1]             # doctest: +SKIP
    {'mdName': 'income-v2', 'weight': 10}

Layout: ``base`` (wire model, ids, quantities, envelope), one module per family of kinds (``connection``, ``jobs``,
``serving``), ``kinds`` (the ``KINDS`` table and reference checks), ``documents`` (text and mappings in and
out) and ``status`` (``StatusPatch``: what a reconcile step changes in a status). Storage, HTTP and the reconcile
loop do not belong here; this package only says what a valid resource is and what a status change is.
"""

from legion.core.quantities import parse_quantity
from legion.core.resources.base import (
    DEFAULT_LIMITS,
    DEFAULT_REQUESTS,
    ID_MAX_LENGTH,
    EnforcedLimits,
    Metadata,
    NoStatus,
    ResourceBase,
    ResourceList,
    ResourceRequirements,
    is_valid_id,
)
from legion.core.resources.connection import (
    CONNECTION_TYPES,
    SECRET_FIELDS,
    SECRET_MASK,
    Connection,
    ConnectionSpec,
    ConnectionType,
    mask_secrets,
    merge_secrets,
)
from legion.core.resources.documents import (
    MAX_DEPTH,
    MAX_FIELD_BYTES,
    MAX_RESOURCE_BYTES,
    MAX_TEXT_BYTES,
    check_size,
    load_documents,
    parse_resource,
    to_document,
)
from legion.core.resources.jobs import (
    ENDED_JOB_STATES,
    JOB_STATES,
    DataBinding,
    EnvironmentVariable,
    JobRunState,
    JobState,
    JobStatus,
    ModelIdentity,
    ModelPackaging,
    ModelPackagingSpec,
    ModelPackagingStatus,
    ModelTraining,
    ModelTrainingSpec,
    ModelTrainingStatus,
    PackagingIntegration,
    PackagingIntegrationSpec,
    PackagingResult,
    PackagingSchema,
    PackagingTarget,
    TargetSchema,
    ToolchainIntegration,
    ToolchainIntegrationSpec,
    TrainingResult,
)
from legion.core.resources.kinds import (
    KINDS,
    KindInfo,
    Reference,
    ReferenceField,
    Resource,
    check_references,
    find_kind,
    references,
)
from legion.core.resources.serving import (
    DEFAULT_MIN_REPLICAS,
    DEFAULT_PROBE_INITIAL_DELAY_S,
    DEPLOYMENT_STATES,
    RESERVED_URL_PREFIXES,
    ROUTE_STATES,
    DeploymentState,
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ModelDeploymentTarget,
    ModelRoute,
    ModelRouteSpec,
    ModelRouteStatus,
    RouteState,
)
from legion.core.resources.status import ReconciledStatus, StatusPatch

__all__ = [
    "CONNECTION_TYPES",
    "DEFAULT_LIMITS",
    "DEFAULT_MIN_REPLICAS",
    "DEFAULT_PROBE_INITIAL_DELAY_S",
    "DEFAULT_REQUESTS",
    "DEPLOYMENT_STATES",
    "ENDED_JOB_STATES",
    "ID_MAX_LENGTH",
    "JOB_STATES",
    "KINDS",
    "MAX_DEPTH",
    "MAX_FIELD_BYTES",
    "MAX_RESOURCE_BYTES",
    "MAX_TEXT_BYTES",
    "RESERVED_URL_PREFIXES",
    "ROUTE_STATES",
    "SECRET_FIELDS",
    "SECRET_MASK",
    "Connection",
    "ConnectionSpec",
    "ConnectionType",
    "DataBinding",
    "DeploymentState",
    "EnforcedLimits",
    "EnvironmentVariable",
    "JobRunState",
    "JobState",
    "JobStatus",
    "KindInfo",
    "Metadata",
    "ModelDeployment",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "ModelDeploymentTarget",
    "ModelIdentity",
    "ModelPackaging",
    "ModelPackagingSpec",
    "ModelPackagingStatus",
    "ModelRoute",
    "ModelRouteSpec",
    "ModelRouteStatus",
    "ModelTraining",
    "ModelTrainingSpec",
    "ModelTrainingStatus",
    "NoStatus",
    "PackagingIntegration",
    "PackagingIntegrationSpec",
    "PackagingResult",
    "PackagingSchema",
    "PackagingTarget",
    "ReconciledStatus",
    "Reference",
    "ReferenceField",
    "Resource",
    "ResourceBase",
    "ResourceList",
    "ResourceRequirements",
    "RouteState",
    "StatusPatch",
    "TargetSchema",
    "ToolchainIntegration",
    "ToolchainIntegrationSpec",
    "TrainingResult",
    "check_references",
    "check_size",
    "find_kind",
    "is_valid_id",
    "load_documents",
    "mask_secrets",
    "merge_secrets",
    "parse_quantity",
    "parse_resource",
    "references",
    "to_document",
]
