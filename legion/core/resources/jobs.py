"""The kinds that run jobs: ``ToolchainIntegration`` + ``ModelTraining``, ``PackagingIntegration`` + ``ModelPackaging``.

An integration says how to run a kind of job (an entrypoint, an image); a training or packaging is one run of it.
Both job kinds report ``scheduling → running → succeeded | failed`` in their status, as Legion's did.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from typing import Any, ClassVar, Final, Literal, get_args

from pydantic import Field, model_validator

from legion.core.resources.base import (
    EnforcedLimits,
    EnvName,
    Image,
    JsonObject,
    Loc,
    ModelName,
    NoStatus,
    RelativePath,
    ResourceBase,
    ResourceId,
    ResourceRequirements,
    Resources,
    Text,
    WireModel,
    check_env_name,
    raise_problems,
)
from legion.core.resources.connection import ConnectionType

JobRunState = Literal["running", "succeeded", "failed"]
"""What a job's process is doing, or how it ended, as a runtime observes it."""
JobState = Literal["scheduling", JobRunState, "unknown"]
"""A training's or packaging's ``status.state``: its run's state, or before (``scheduling``) and unknown."""
JOB_STATES: Final[tuple[str, ...]] = get_args(JobState)
ENDED_JOB_STATES: Final = frozenset({"succeeded", "failed"})


def _duplicates(names: list[str], field: str, key: str) -> list[tuple[Loc, str]]:
    """One problem per repeated name, at the position of each repetition."""
    seen: Counter[str] = Counter()
    problems: list[tuple[Loc, str]] = []
    for i, name in enumerate(names):
        seen[name] += 1
        if seen[name] == 2:
            problems.append(((field, i, key), f"{name!r} is given twice"))
    return problems


class ToolchainIntegrationSpec(WireModel):
    """How to run a training: the command in the job's environment, the image, variables for every run."""

    entrypoint: Text
    default_image: Image | None = None
    additional_environments: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _env_names(self) -> ToolchainIntegrationSpec:
        problems: list[tuple[Loc, str]] = []
        for name in self.additional_environments:
            try:
                check_env_name(name)
            except ValueError as exc:
                problems.append((("additionalEnvironments", name), str(exc)))
        raise_problems("ToolchainIntegrationSpec", problems)
        return self


class ToolchainIntegration(ResourceBase):
    kind: Literal["ToolchainIntegration"] = "ToolchainIntegration"
    spec: ToolchainIntegrationSpec
    status: NoStatus = Field(default_factory=NoStatus)


class ModelIdentity(WireModel):
    name: ModelName
    version: ModelName
    work_dir: RelativePath | None = Field(default=None, description="where, under the work dir, the model is saved")
    artifact_name_template: str | None = None


class EnvironmentVariable(WireModel):
    name: EnvName
    value: str


class DataBinding(WireModel):
    """Data to fetch from a connection into the training's work space before it starts."""

    conn_name: ResourceId
    local_path: RelativePath
    remote_path: str | None = Field(default=None, description="overrides the path in the connection's uri")


class ModelTrainingSpec(WireModel):
    """One training run. The code comes from a git connection (``vcsName`` at ``reference``) or a local
    directory (``localPath``): exactly one of the two."""

    model: ModelIdentity
    toolchain: ResourceId
    vcs_name: ResourceId | None = None
    local_path: Text | None = None
    reference: Text | None = None
    entrypoint: Text
    args: list[str] = Field(default_factory=list)
    hyper_parameters: dict[str, str] = Field(default_factory=dict)
    envs: list[EnvironmentVariable] = Field(default_factory=list)
    work_dir: RelativePath | None = None
    data: list[DataBinding] = Field(default_factory=list)
    resources: Resources = Field(default_factory=ResourceRequirements)

    @model_validator(mode="after")
    def _one_source(self) -> ModelTrainingSpec:
        problems: list[tuple[Loc, str]] = []
        if self.vcs_name is not None and self.local_path is not None:
            why = "give either vcsName (a git connection) or localPath (a directory), not both"
            problems += [(("vcsName",), why), (("localPath",), why)]
        elif self.vcs_name is None and self.local_path is None:
            why = "required: give vcsName (a git connection) or localPath (a directory)"
            problems += [(("vcsName",), why), (("localPath",), why)]
        if self.reference is not None and self.vcs_name is None:
            problems.append((("reference",), "a git reference needs vcsName"))
        problems += _duplicates([e.name for e in self.envs], "envs", "name")
        raise_problems("ModelTrainingSpec", problems)
        return self


class TrainingResult(WireModel):
    artifact_name: Text
    commit_id: str | None = Field(default=None, alias="commitID")
    run_id: str | None = None


class JobStatus(WireModel):
    """What trainings and packagings both report about their run."""

    FAILED_STATE: ClassVar[str] = "failed"
    """The state that keeps a ``reason`` (see ``StatusPatch``)."""
    state: JobState = "scheduling"
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    pod_name: str | None = None
    process_id: int | None = None
    observed_generation: int | None = Field(default=None, description="the spec generation this run is of")
    last_updated_time: datetime | None = None
    enforced_limits: EnforcedLimits | None = Field(
        default=None, description="how the runtime holds the run to spec.resources.limits"
    )


class ModelTrainingStatus(JobStatus):
    artifacts: list[TrainingResult] = Field(default_factory=list)


class ModelTraining(ResourceBase):
    kind: Literal["ModelTraining"] = "ModelTraining"
    spec: ModelTrainingSpec
    status: ModelTrainingStatus = Field(default_factory=ModelTrainingStatus)


class TargetSchema(WireModel):
    """A place a packager writes to (an image registry, a bucket), with the connection types that fit it."""

    name: Text
    connection_types: list[ConnectionType] = Field(min_length=1)
    required: bool = False
    default: ResourceId | None = Field(default=None, description="the connection used when a packaging names none")


def _schema_problems(arguments: dict[str, Any]) -> list[tuple[Loc, str]]:
    """The structural checks that make ``arguments`` usable as the JSON Schema of an object."""
    problems: list[tuple[Loc, str]] = []
    if arguments.get("type", "object") != "object":
        problems.append((("arguments", "type"), "the arguments schema must describe an object (type: object)"))
    properties = arguments.get("properties", {})
    if not isinstance(properties, dict) or not all(isinstance(p, dict) for p in properties.values()):
        problems.append((("arguments", "properties"), "must map each argument name to its JSON Schema"))
        properties = {}
    for name, schema in properties.items():
        pattern = schema.get("pattern")
        try:
            re.compile(pattern if isinstance(pattern, str) else "")
        except re.error as exc:
            problems.append((("arguments", "properties", name, "pattern"), f"not a regular expression: {exc}"))
    required = arguments.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        problems.append((("arguments", "required"), "must be a list of argument names"))
    elif properties:
        problems += [
            (("arguments", "required", i), f"{name!r} is not among the properties")
            for i, name in enumerate(required)
            if name not in properties
        ]
    return problems


class PackagingSchema(WireModel):
    targets: list[TargetSchema] = Field(default_factory=list)
    arguments: JsonObject = Field(default_factory=dict, description="a JSON Schema of the packaging's arguments")

    @model_validator(mode="after")
    def _well_formed(self) -> PackagingSchema:
        problems = _duplicates([t.name for t in self.targets], "targets", "name") + _schema_problems(self.arguments)
        raise_problems("PackagingSchema", problems)
        return self


class PackagingIntegrationSpec(WireModel):
    entrypoint: Text
    default_image: Image | None = None
    privileged: bool = False
    schema_: PackagingSchema = Field(default_factory=PackagingSchema, alias="schema")


class PackagingIntegration(ResourceBase):
    kind: Literal["PackagingIntegration"] = "PackagingIntegration"
    spec: PackagingIntegrationSpec
    status: NoStatus = Field(default_factory=NoStatus)


class PackagingTarget(WireModel):
    name: Text
    connection_name: ResourceId


class ModelPackagingSpec(WireModel):
    """Turn a trained artifact into something runnable with a packaging integration."""

    artifact_name: Text
    integration_name: ResourceId
    arguments: JsonObject = Field(default_factory=dict)
    targets: list[PackagingTarget] = Field(default_factory=list)
    resources: Resources = Field(default_factory=ResourceRequirements)

    @model_validator(mode="after")
    def _unique_targets(self) -> ModelPackagingSpec:
        raise_problems("ModelPackagingSpec", _duplicates([t.name for t in self.targets], "targets", "name"))
        return self


class PackagingResult(WireModel):
    name: Text
    value: str


class ModelPackagingStatus(JobStatus):
    results: list[PackagingResult] = Field(default_factory=list)


class ModelPackaging(ResourceBase):
    kind: Literal["ModelPackaging"] = "ModelPackaging"
    spec: ModelPackagingSpec
    status: ModelPackagingStatus = Field(default_factory=ModelPackagingStatus)
