"""The fault catalog as values: one :class:`FaultSpec` per fault code, and what is derived from it.

A spec says how its code is judged (its condition over a batch's columns, ``when``, or the
composite judge of the engine that decides it; the condition as text, the modes, the hold
conditions and their thresholds), which registry facts it needs, which evidence its events carry
beyond the deciding sample, and how the simulator injects it. Derived from :data:`CATALOG`, never
retyped: what ``engine.evaluate`` judges and in which order, the rule and condition columns of the
engine (:data:`SAMPLE_RULES`, :data:`CONDITIONS`), the processor's evidence, the simulator's
injection timings and the table in ``docs/rules.md`` (``tests/unit/rules/test_catalog.py`` keeps
the page equal to :func:`docs_table`). Adding a fault code judged by one held condition: a member
of ``FaultCode`` and its severity (``liftwatch.schema``), its thresholds model (``thresholds.py``),
a spec here with its ``when`` (a mask :class:`~liftwatch.rules.conditions.Frame` lacks goes there)
and a row in the catalog test table; a rule with a history of its own also needs a judge in
``engine.JUDGES``.

Severity is read from ``liftwatch.schema.FAULT_SEVERITY``, not declared here: the severity travels in
every ``fault.v1`` record and the alert service checks it, so it belongs to the message schema, the
shared core every process imports. The core cannot import this module (it imports the core's
``FaultCode``: a cycle), so the one owner of severity is the schema and specs look it up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from liftwatch.rules.columns import INSPECTION, MAINTENANCE, OPEN
from liftwatch.rules.conditions import Condition
from liftwatch.rules.thresholds import RuleSet
from liftwatch.schema import FAULT_SEVERITY, FaultCode, Severity


@dataclass(frozen=True, slots=True)
class Injection:
    """How the simulator injects a fault (event seconds): the minimum is the hold time plus a margin."""

    default_s: float
    minimum_s: float
    variant: str | None = None
    """``trapped_passenger`` only: which raise condition the injection produces."""


@dataclass(frozen=True, slots=True)
class Hold:
    """A condition whose runs the engine tracks: a raise condition held for a threshold, or a clear one."""

    name: str
    """Name of the condition (the state columns' name: ``trapped_passenger.between_floors``)."""
    hold_param: str | None
    """Thresholds parameter giving its hold time (None: raises at the first sample; never raises
    for a clear-only condition)."""
    raises: bool = True
    """False for a condition that only clears (trapped passenger's combined condition)."""
    min_samples_param: str | None = None
    """Thresholds parameter giving the consecutive samples it must also hold for (None: one)."""


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One fault code of the catalog, as liftwatch judges it."""

    code: FaultCode
    condition: str
    """The condition as implemented, for docs/rules.md; ``{param}`` is the parameter's default."""
    modes: str
    """Service modes it is judged in, for the docs."""
    holds: tuple[Hold, ...] = ()
    """Conditions over samples whose runs the engine tracks (empty: not judged on samples)."""
    needs: tuple[str, ...] = ()
    """Registry facts it needs (``TerminalInfo`` fields)."""
    evidence: tuple[str, ...] = ()
    """Evidence fields its events carry beyond the deciding sample's and ``held_s``/``false_for_s``."""
    injections: tuple[Injection, ...] = field(default_factory=tuple)
    """How the simulator injects it (one per variant)."""
    when: Condition | None = None
    """Its one raise condition over a batch (:class:`~liftwatch.rules.conditions.Frame`), held for the
    hold time and cleared by :func:`liftwatch.rules.runs.hold_rule`."""
    judge: str | None = None
    """Else the composite judge of ``liftwatch.rules.engine.JUDGES`` that decides it: conditions that
    carry state of their own across samples (door history), or several raise conditions."""

    @property
    def severity(self) -> Severity:
        return FAULT_SEVERITY[self.code]

    @property
    def on_samples(self) -> bool:
        """Judged on samples in event time by the engine (else by the processor)."""
        return bool(self.holds)


def _hold(code: FaultCode, param: str | None = "hold_s") -> tuple[Hold, ...]:
    return (Hold(code.value, param),)


CATALOG: tuple[FaultSpec, ...] = (
    FaultSpec(
        FaultCode.TRAPPED_PASSENGER,
        "between floors: occupied ∧ stopped ∧ door `closed` ∧ ¬door_zone, {between_floors_hold_s:g} s; at a "
        "landing: same with door_zone ∧ the door has not been anything but `closed` since the car stopped (a stop "
        "= a run of `stopped` samples), {at_landing_hold_s:g} s. One code, one raise: each variant has its own "
        "timer, the fault clears when neither holds for {clear_after_s:g} s.",
        "normal",
        holds=(
            Hold("trapped_passenger.between_floors", "between_floors_hold_s"),
            Hold("trapped_passenger.at_landing", "at_landing_hold_s"),
            Hold("trapped_passenger", None, raises=False),
        ),
        evidence=("variant",),
        injections=(Injection(120.0, 30.0, "between_floors"), Injection(120.0, 75.0, "at_landing")),
        judge="trapped",
    ),
    FaultSpec(
        FaultCode.OVERSPEED,
        "speed > factor × registry rated speed, ≥ {hold_s:g} s and ≥ {min_samples} consecutive samples",
        "any",
        holds=(Hold(FaultCode.OVERSPEED.value, "hold_s", min_samples_param="min_samples"),),
        needs=("rated_speed",),
        evidence=("limit_mps", "factor"),
        injections=(Injection(2.0, 1.0),),
        when=lambda f: f.speed > f.overspeed_limit,
    ),
    FaultSpec(
        FaultCode.DOOR_OPEN_WHILE_MOVING,
        "door ≠ `closed` ∧ (speed ≥ {speed_mps:g} ∨ (moving ∧ ¬door_zone)), 1 sample",
        "all but inspection/maintenance",
        holds=_hold(FaultCode.DOOR_OPEN_WHILE_MOVING, None),
        evidence=("door_speed_mps",),
        injections=(Injection(2.0, 1.0),),
        when=lambda f: (
            ~f.closed
            & ((f.speed >= f.door_open_speed) | (f.moving & ~f.door_zone))
            & (f.mode != INSPECTION)
            & (f.mode != MAINTENANCE)
        ),
    ),
    FaultSpec(
        FaultCode.OVERTRAVEL_TOP,
        "limit switch ∨ floor beyond the registry's top; clears on the first sample back in range with the "
        "switch reset (clear time {clear_after_s:g})",
        "normal",
        holds=_hold(FaultCode.OVERTRAVEL_TOP, None),
        needs=("top_floor",),
        evidence=("limit_up", "limit_down", "top_floor", "bottom_floor"),
        injections=(Injection(20.0, 2.0),),
        when=lambda f: (f.limit_up | (f.floor > f.top)) & f.normal,
    ),
    FaultSpec(
        FaultCode.OVERTRAVEL_BOTTOM,
        "limit switch ∨ floor beyond the registry's bottom; clears on the first sample back in range with the "
        "switch reset (clear time {clear_after_s:g})",
        "normal",
        holds=_hold(FaultCode.OVERTRAVEL_BOTTOM, None),
        needs=("bottom_floor",),
        evidence=("limit_up", "limit_down", "top_floor", "bottom_floor"),
        injections=(Injection(20.0, 2.0),),
        when=lambda f: (f.limit_down | (f.floor < f.bottom)) & f.normal,
    ),
    FaultSpec(
        FaultCode.STOPPED_OUTSIDE_DOOR_ZONE,
        "stopped ∧ ¬door_zone ∧ ¬occupied, {hold_s:g} s",
        "normal",
        holds=_hold(FaultCode.STOPPED_OUTSIDE_DOOR_ZONE),
        evidence=("safety_circuit", "power", "alarm_button"),
        injections=(Injection(90.0, 55.0),),
        when=lambda f: f.stopped & ~f.door_zone & ~f.occupied & f.normal,
    ),
    FaultSpec(
        FaultCode.SAFETY_CIRCUIT_OPEN,
        "¬safety_circuit, {hold_s:g} s",
        "normal",
        holds=_hold(FaultCode.SAFETY_CIRCUIT_OPEN),
        evidence=("safety_circuit", "power", "alarm_button"),
        injections=(Injection(10.0, 2.0),),
        when=lambda f: ~f.safety & f.normal,
    ),
    FaultSpec(
        FaultCode.DOOR_REOPEN_LOOP,
        "a *reversal* is a sample with door `opening` or `open` right after a `closing` sample of the same "
        "terminal, car not moving, in normal mode (at 1 Hz the `opening` state is often not sampled); any moving "
        "sample (a departure) or a sample in another mode (a technician working the door in "
        "inspection/maintenance) starts the count afresh; the condition holds while the {reversals}th most recent "
        "reversal is < {window_s:g} s old; `since_ms` is the {reversals}th reversal",
        "normal",
        holds=_hold(FaultCode.DOOR_REOPEN_LOOP, None),
        evidence=("reversals", "window_s"),
        # the injection is a number of reversals, not a duration
        injections=(Injection(0.0, 0.0),),
        judge="reopen_loop",
    ),
    FaultSpec(
        FaultCode.DOOR_HELD_OPEN,
        "door `open` ∧ stopped, {hold_s:g} s",
        "normal",
        holds=_hold(FaultCode.DOOR_HELD_OPEN),
        injections=(Injection(180.0, 135.0),),
        when=lambda f: (f.door == OPEN) & f.stopped & f.normal,
    ),
    FaultSpec(
        FaultCode.POWER_FAILURE,
        "¬power, {hold_s:g} s",
        "any",
        holds=_hold(FaultCode.POWER_FAILURE),
        evidence=("safety_circuit", "power", "alarm_button"),
        injections=(Injection(30.0, 7.0),),
        when=lambda f: ~f.power,
    ),
    FaultSpec(
        FaultCode.ALARM_BUTTON,
        "alarm_button, {hold_s:g} s",
        "normal",
        holds=_hold(FaultCode.ALARM_BUTTON),
        evidence=("safety_circuit", "power", "alarm_button"),
        injections=(Injection(6.0, 4.0),),
        when=lambda f: f.alarm & f.normal,
    ),
    FaultSpec(
        FaultCode.TERMINAL_OFFLINE,
        "processing time: no accepted message for > {after_s:g} s (gateway receive time vs. the engine clock); "
        "cleared by the next accepted message. The MQTT last will is recorded as evidence (`last_will`); it does "
        "not shorten the {after_s:g} s (a brief reconnect would otherwise page people). Evaluated every 5 s and "
        "only while the consumer is caught up (a backlog is not an outage). `since_ms` is the last message time, "
        "so a restart re-raising it yields the same id. Only terminals this process has seen: a registered "
        "terminal that never sent anything is a coverage question for the monthly statistics.",
        "—",
        evidence=("last_message_ms", "last_will", "received_ms"),
        injections=(Injection(300.0, 150.0),),
    ),
    FaultSpec(
        FaultCode.UNREGISTERED_TERMINAL,
        "first evaluated sample of a terminal unknown to the registry on each site day (site time zone, UTC "
        "offset taken at start); raised only, never cleared. Such a terminal raises nothing else.",
        "any",
        injections=(Injection(300.0, 1.0),),
    ),
)
"""Every fault code, in the catalog's order (docs/protocol/faults.md)."""

SPECS: dict[FaultCode, FaultSpec] = {spec.code: spec for spec in CATALOG}

SAMPLE_RULES: tuple[FaultSpec, ...] = tuple(spec for spec in CATALOG if spec.on_samples)
"""The rules judged on samples, in the order of the engine's rule columns."""

CONDITIONS: tuple[tuple[FaultSpec, Hold], ...] = tuple((spec, hold) for spec in SAMPLE_RULES for hold in spec.holds)
"""Every tracked condition with its rule, in the order of the engine's condition columns."""


def defaults(spec: FaultSpec) -> dict[str, object]:
    """The default thresholds of a rule (its section of the thresholds file)."""
    section: dict[str, object] = RuleSet().model_dump()[spec.code.value]
    return section


def docs_table() -> str:
    """The rule table of docs/rules.md ("Rules: decisions where the catalog is silent")."""
    lines = [
        "| code | severity | condition as implemented (defaults) | modes | registry facts | evidence |",
        "|---|---|---|---|---|---|",
    ]
    for spec in CATALOG:
        params = defaults(spec) if spec.code.value in RuleSet.model_fields else {}
        lines.append(
            f"| `{spec.code}` | {spec.severity} | {spec.condition.format(**params)} | {spec.modes} | "
            f"{', '.join(spec.needs) or '—'} | {', '.join(f'`{e}`' for e in spec.evidence) or '—'} |"
        )
    return "\n".join(lines) + "\n"
