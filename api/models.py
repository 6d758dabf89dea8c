"""Request and response bodies of the HTTP API (validated on the way in, documented in OpenAPI)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from liftwatch import ids
from liftwatch.alerts import lifecycle
from liftwatch.schema import FaultCode, IncidentStatus
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

# Times a request may name: monitoring data exists in neither the distant past nor the distant
# future, and within these bounds no arithmetic on them (a default range, a bucket) overflows.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def refuse_nul(text: str) -> str:
    """PostgreSQL text cannot hold NUL: refused here (422) instead of failing in the database (500)."""
    if "\x00" in text:
        raise PydanticCustomError("nul_character", "must not contain NUL characters")
    return text


def _bounded(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise PydanticCustomError("timezone_aware", "must have a UTC offset")
    if not EARLIEST <= moment < LATEST:
        raise PydanticCustomError("datetime_range", "must be between 1970 and 2200")
    return moment


Instant = Annotated[datetime, AfterValidator(_bounded)]
"""A time from outside: with a UTC offset, between ``EARLIEST`` and ``LATEST``."""

RegistrationCode = Annotated[
    str, Field(pattern=ids.REGISTRATION_CODE.schema_pattern, description=f"设备注册代码, {ids.REGISTRATION_CODE.rule}.")
]
RescueCode = Annotated[
    str, Field(pattern=ids.RESCUE_CODE.schema_pattern, description=f"应急救援识别码, {ids.RESCUE_CODE.rule}.")
]
TerminalId = Annotated[str, Field(pattern=ids.TERMINAL_ID.schema_pattern)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
ElevatorKind = Literal["traction", "hydraulic", "escalator", "moving_walk"]
Floor = Annotated[int, Field(ge=-10, le=200)]

ACTION_NAMES: dict[lifecycle.Action, str] = {action: action.value.replace("_", "-") for action in lifecycle.Action}
"""Each lifecycle action as the API spells it: a path segment, with hyphens (``false-alarm``)."""
ACTIONS_BY_NAME: dict[str, lifecycle.Action] = {name: action for action, name in ACTION_NAMES.items()}


def _one_of(values: Iterable[str]) -> Any:
    """A ``Literal`` of values owned elsewhere: validated and documented as if spelled out here."""
    return Literal[tuple(str(value) for value in values)]


# The lifecycle's words, as Literals and not its enums, so that a wrong value is refused as before
# (422 ``literal_error``) and OpenAPI lists the values in place. Type checkers see plain text.
if TYPE_CHECKING:
    Status = str
    Action = str
    CloseCause = str
else:
    Status = _one_of(IncidentStatus)
    Action = _one_of(ACTION_NAMES.values())
    CloseCause = _one_of(lifecycle.CloseCause)


class Input(BaseModel):
    """Base of every request body: unknown fields refused, text stripped, NUL refused in any string.

    The NUL check is here, on the base class, so a body model added later is covered without
    remembering a type (PostgreSQL text cannot hold NUL: it would fail as a 500 in the database).
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str):
            refuse_nul(value)
        elif isinstance(value, list | tuple | set):
            for item in value:
                if isinstance(item, str):
                    refuse_nul(item)
        return value


class ElevatorFields(Input):
    """Fields an admin may set on an elevator (all optional: a PATCH)."""

    rescue_code: RescueCode | None = None
    kind: ElevatorKind | None = None
    address: Name | None = None
    district: Name | None = None
    latitude: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = None
    use_unit: Name | None = None
    maintainer: Name | None = Field(default=None, description="Registered name of an existing maintenance firm.")
    manufacturer: Annotated[str, Field(max_length=200)] | None = None
    model: Annotated[str, Field(max_length=200)] | None = None
    installed_on: date | None = None
    rated_speed: Annotated[float, Field(gt=0, le=25)] | None = None
    rated_load: Annotated[int, Field(gt=0, le=100_000)] | None = None
    bottom_floor: Floor | None = None
    top_floor: Floor | None = None
    last_inspection: date | None = None
    next_inspection_due: date | None = None
    insured: bool | None = None

    @model_validator(mode="after")
    def _floors(self) -> Self:
        if self.bottom_floor is not None and self.top_floor is not None and self.bottom_floor > self.top_floor:
            raise ValueError("bottom_floor must be <= top_floor")
        return self


class ElevatorCreate(ElevatorFields):
    """A new elevator (same columns as the registry CSV, docs/protocol/registry.md)."""

    registration_code: RegistrationCode
    rescue_code: RescueCode
    kind: ElevatorKind
    address: Name
    district: Name
    use_unit: Name
    maintainer: Name
    installed_on: date
    rated_speed: Annotated[float, Field(gt=0, le=25)]
    bottom_floor: Floor
    top_floor: Floor


class Elevator(BaseModel):
    """An elevator of the registry."""

    registration_code: str
    rescue_code: str
    kind: str
    address: str
    district: str
    latitude: float | None
    longitude: float | None
    use_unit_id: int
    use_unit: str
    maintainer_id: int
    maintainer: str
    manufacturer: str | None
    model: str | None
    installed_on: date
    rated_speed: float
    rated_load: int | None
    bottom_floor: int
    top_floor: int
    last_inspection: date | None
    next_inspection_due: date | None
    insured: bool | None
    terminal_id: str | None
    created_at: datetime
    updated_at: datetime


class ElevatorPage(BaseModel):
    items: list[Elevator]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class MaintainerCreate(Input):
    name: Name


class Maintainer(BaseModel):
    id: int
    name: str
    created_at: datetime
    elevators: int


class TerminalCreate(Input):
    terminal_id: TerminalId
    registration_code: RegistrationCode | None = None


class TerminalUpdate(Input):
    registration_code: RegistrationCode | None = Field(description="Elevator it is fitted to; null = removed.")


class Terminal(BaseModel):
    terminal_id: str
    registration_code: str | None
    created_at: datetime
    last_seen_at: datetime | None = Field(
        description="When its latest stored sample was received, rounded down to 30 s (liftwatch.presence); "
        "null if never."
    )
    last_status: str | None


class Incident(BaseModel):
    """An incident as the board shows it."""

    id: int
    registration_code: str | None
    terminal_id: str
    code: str
    severity: str
    status: str
    maintainer_id: int | None
    maintainer: str | None
    district: str | None
    address: str | None
    rescue_code: str | None
    detected_at: datetime
    opened_at: datetime
    last_seen_at: datetime
    occurrences: int
    chattering: bool
    condition_cleared_at: datetime | None
    acknowledged_at: datetime | None
    dispatched_at: datetime | None
    arrived_at: datetime | None
    released_at: datetime | None
    closed_at: datetime | None
    close_cause: str | None
    escalation_level: int
    dispatch_deadline_missed: bool
    arrival_deadline_missed: bool
    dispatch_deadline_at: datetime | None = Field(
        description="Stamped when it opened from the deadline policy in force (trapped passengers: detection + 5 min)."
    )
    arrival_deadline_at: datetime | None = Field(
        description="Stamped when it opened from the deadline policy in force (trapped passengers: detection + 30 min)."
    )
    source: Literal["rule", "call"] = Field(default="rule", description="Opened by the rules or from a phone call.")
    detected_late: bool = Field(
        default=False,
        description="Found in samples that arrived late (a terminal's buffer after an outage): detected_at is"
        " the event time, opened_at when the platform saw it; the clocks run from the earlier.",
    )
    suppressed: Literal["maintenance", "shelved", "out_of_service"] | None = Field(
        default=None, description="Not notified now: a maintenance window, a shelf, or the elevator is out of service."
    )
    assignee: str | None = Field(default=None, description="The operator working it; null = unclaimed.")
    group_id: int | None = Field(default=None, description="Its incident group (the leader's id); null = alone.")
    inhibited_by: int | None = Field(
        default=None, description="The incident (e.g. a power failure) that kept its last change from being notified."
    )


class IncidentPage(BaseModel):
    items: list[Incident]
    next_cursor: str | None
    last_change_id: int = Field(description="Newest change id at query time: open the stream from here.")


class IncidentEvent(BaseModel):
    id: int
    at: datetime
    kind: str
    status_after: str
    actor: str
    note: str
    data: dict[str, Any]


class IncidentDelivery(BaseModel):
    """One notification of one of the incident's changes to one receiver, as the delivery loop left it."""

    id: int
    change_id: int
    kind: str = Field(description="The change notified (opened, acknowledged, ...).")
    receiver: str
    channel: str = Field(description="webhook, email, wecom or dingtalk.")
    status: str = Field(description="pending, sent or dead.")
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime


class IncidentDetail(BaseModel):
    incident: Incident
    events: list[IncidentEvent]
    latest_telemetry: dict[str, Any] | None
    deliveries: list[IncidentDelivery] = Field(
        default=[], description="Notifications of its changes (a firm sees those to its own receivers)."
    )


class TransitionRequest(Input):
    note: Annotated[str, Field(max_length=2000)] = ""
    cause: CloseCause | None = Field(default=None, description="Cause category (close only).")


class TelemetryPoint(BaseModel):
    t: datetime
    samples: int
    speed_avg: float
    speed_max: float
    floor: int
    door_open_share: float
    occupied_share: float


class TelemetrySeries(BaseModel):
    registration_code: str
    terminal_id: str | None
    since: datetime
    until: datetime
    bucket_s: float
    points: list[TelemetryPoint]


class DeadLetter(BaseModel):
    id: int
    received_at: datetime
    source: str
    topic: str
    reason: str
    detail: str
    terminal_id: str | None
    payload_preview: str
    payload_bytes: int


class DeadLetterPage(BaseModel):
    items: list[DeadLetter]
    next_cursor: str | None


class Me(BaseModel):
    role: str
    name: str
    maintainer_id: int | None
    maintainer: str | None
    language: str
    timezone: str


class CatalogStatus(BaseModel):
    status: str
    open: bool = Field(description="Still needs someone (not closed, false alarm or auto-cleared).")
    at_risk: bool = Field(description="Open and nobody released yet: escalation and a false alarm are meant for these.")
    actions: list[str] = Field(description="What the service accepts in this status, the step forward first.")


class CatalogFault(BaseModel):
    code: str
    severity: str


class Catalog(BaseModel):
    """The words of incidents, for clients that build their lists from them (the console)."""

    statuses: list[CatalogStatus] = Field(description="In lifecycle order.")
    close_causes: list[str]
    max_escalation_level: int
    severities: list[str] = Field(description="Most urgent first.")
    faults: list[CatalogFault]
    your_actions: list[str] = Field(
        default_factory=list,
        description="The actions the caller's role may take (api/access.py), as the paths spell them.",
    )


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    checks: dict[str, str]


# --- the emergency centre's work: calls, comments, assignment (api/centre.py) -------------------


class CallRequest(Input):
    """A phone call about an elevator (the 96333 path): opens an incident, or joins the open one."""

    rescue_code: RescueCode | None = Field(default=None, description="Read by the caller from the car's plate.")
    registration_code: RegistrationCode | None = None
    code: FaultCode = Field(description="What the caller reports, e.g. `trapped_passenger`.")
    source: Literal["call"] = "call"
    caller_phone: (
        Annotated[str, Field(max_length=30, description="Call-back number (digits, +, spaces, -).")] | None
    ) = None
    note: Annotated[str, Field(max_length=2000)] = ""

    @model_validator(mode="after")
    def _one_elevator(self) -> Self:
        if (self.rescue_code is None) == (self.registration_code is None):
            raise ValueError("give exactly one of rescue_code and registration_code")
        return self


class CallResult(BaseModel):
    incident: Incident
    joined: bool = Field(description="True: an incident of this elevator and code was already open.")


class GroupActionResult(BaseModel):
    group_id: int
    acknowledged: list[int] = Field(description="Members acknowledged now (those still detected).")


class CommentRequest(Input):
    note: Annotated[str, Field(min_length=1, max_length=2000)]


class AssigneeRequest(Input):
    assignee: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        description="An operator's or admin's name (their token's name); null = release."
    )


# --- maintenance windows, shelves, out of service (api/suppression.py) ---------------------------

Reason = Annotated[str, Field(min_length=1, max_length=500)]


class WindowCreate(Input):
    registration_code: RegistrationCode
    starts_at: Instant | None = Field(default=None, description="Default: now. At most 1 h in the past.")
    ends_at: Instant = Field(description="After starts_at and now; the window lasts at most 72 h.")
    reason: Reason


class Window(BaseModel):
    id: int
    registration_code: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str
    created_at: datetime
    ended_by: str | None
    ended_at: datetime | None
    active: bool = Field(description="In force now.")


class ShelfCreate(Input):
    registration_code: RegistrationCode
    code: FaultCode = Field(description="Never trapped_passenger or overspeed.")
    minutes: Annotated[int, Field(ge=1, le=480, description="At most 8 h; it returns by itself.")]
    reason: Reason


class Shelf(BaseModel):
    id: int
    registration_code: str
    code: str
    reason: str
    shelved_at: datetime
    expires_at: datetime
    created_by: str
    ended_by: str | None
    ended_at: datetime | None
    active: bool


class OutOfServiceRequest(Input):
    reason: Reason


class OutOfService(BaseModel):
    id: int
    registration_code: str
    since: datetime
    reason: str
    set_by: str
    ended_by: str | None
    ended_at: datetime | None
    active: bool


# --- alarm load (api/alarm_load.py) ---------------------------------------------------------------


class Desk(BaseModel):
    name: str
    districts: list[str]


class DeskUpdate(Input):
    districts: Annotated[list[Name], Field(min_length=1, max_length=50, description="Districts the desk watches.")]
