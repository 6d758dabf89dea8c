"""The rule engine around the pure core: terminal slots, registry join, fault events, snapshots.

Still free of I/O and of the clock (``now_ms`` is an argument): the Kafka service, the replay
command and the tests all drive the same :class:`RuleProcessor`.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import cramjam
import numpy as np
from liftwatch.columnar import TelemetryArrays
from liftwatch.rules.catalog import SAMPLE_RULES
from liftwatch.rules.columns import Columns, Messages
from liftwatch.rules.continuity import Continuity
from liftwatch.rules.engine import Detections, evaluate
from liftwatch.rules.errors import CheckpointError
from liftwatch.rules.params import SlotParams, TerminalInfo
from liftwatch.rules.state import NONE, RULES, V3_NAMES, State
from liftwatch.rules.thresholds import Thresholds
from liftwatch.schema import (
    DOOR_STATES,
    FAULT_SEVERITY,
    MODES,
    FaultCode,
    FaultEvent,
    FaultTransition,
    StatusRecord,
    TelemetryRecord,
    fault_event_id,
)

LATE_RUN_GAP_MS = 60_000
"""Late samples of a terminal this long after the last late sample the late lane judged (or older than
it) start a new late run: rule timers never span two outages' backlogs."""

SNAPSHOT_VERSION = 4
"""4 names the rule state columns (``cond.overspeed``) where 3 numbered them in the catalog's order of the
time, so adding a fault code leaves checkpoints readable; 3 added message-sequence continuity (state
columns and the messages held beyond a hole). 2 and 3 still load (their names read through ``V3_NAMES``)."""

# A snapshot is an uncompressed .npz compressed whole with zstd at this level: a fifth of the CPU
# of np.savez_compressed (zlib level 6, member by member) for a smaller blob. The rules checkpoint
# every terminal of a partition every couple of seconds, so this cost grows with the fleet, not the
# traffic. Snapshots written before issue 20 are plain compressed .npz files, and still load.
SNAPSHOT_ZSTD_LEVEL = 1
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


Telemetry: TypeAlias = TelemetryRecord | TelemetryArrays
"""A ``telemetry`` record as read: one message (``telemetry.v1``), or many as columns
(``telemetry.columns.v1``, unpacked and checked by ``TelemetryArrays.from_record``)."""

EvidenceField = Callable[[Columns, SlotParams, int, int, int], Any]
"""An evidence value from (the evaluated samples, the slot parameters, position, slot, rule set index)."""

EVIDENCE: dict[str, EvidenceField] = {
    "variant": lambda s, p, pos, slot, model: "at_landing" if s.door_zone[pos] else "between_floors",
    "limit_mps": lambda s, p, pos, slot, model: float(p.overspeed_limit[slot]),
    "factor": lambda s, p, pos, slot, model: float(p.factor[model]),
    "door_speed_mps": lambda s, p, pos, slot, model: float(p.door_open_speed[slot]),
    "limit_up": lambda s, p, pos, slot, model: bool(s.limit_up[pos]),
    "limit_down": lambda s, p, pos, slot, model: bool(s.limit_down[pos]),
    "top_floor": lambda s, p, pos, slot, model: int(p.top[slot]),
    "bottom_floor": lambda s, p, pos, slot, model: int(p.bottom[slot]),
    "reversals": lambda s, p, pos, slot, model: int(p.reversals[model]),
    "window_s": lambda s, p, pos, slot, model: float(p.window_ms[model]) / 1000,
    "safety_circuit": lambda s, p, pos, slot, model: bool(s.safety[pos]),
    "power": lambda s, p, pos, slot, model: bool(s.power[pos]),
    "alarm_button": lambda s, p, pos, slot, model: bool(s.alarm[pos]),
}
"""How each evidence field a rule's catalog spec names is read."""

_RULE_EVIDENCE: tuple[tuple[str, ...], ...] = tuple(spec.evidence for spec in SAMPLE_RULES)
"""Evidence fields by rule index."""


class RuleProcessor:
    """Fault detection for a set of terminals: feed it telemetry, get ``FaultEvent`` records back."""

    def __init__(self, thresholds: Thresholds, *, lateness_ms: int = 5_000, day_offset_ms: int = 0) -> None:
        self.thresholds = thresholds
        self.lateness_ms = lateness_ms
        self.day_offset_ms = day_offset_ms
        self.params = SlotParams(thresholds)
        self.state = State(self.params.reversals_kept)
        self.continuity = Continuity(lateness_ms)
        self.late_state = State(self.params.reversals_kept)
        """The late lane: rule state over late samples only (see :meth:`_judge_late`)."""
        self.slots: dict[str, int] = {}
        self.terminals: list[str] = []
        self.registry: dict[str, TerminalInfo] = {}

    # --- terminals and registry -------------------------------------------------------------

    def slot(self, terminal: str) -> int:
        """The slot of a terminal (allocated on first sight)."""
        slot = self.slots.get(terminal)
        if slot is None:
            slot = len(self.terminals)
            self.slots[terminal] = slot
            self.terminals.append(terminal)
            if slot >= self.params.capacity:
                self.params.grow(max(1024, 2 * self.params.capacity))
            self.params.assign(slot, self.registry.get(terminal))
        return slot

    def slots_of(self, terminals: Iterable[str]) -> np.ndarray[Any, np.dtype[np.intp]]:
        return np.fromiter((self.slot(t) for t in terminals), np.intp)

    def unknown(self, terminals: Iterable[str]) -> list[str]:
        """Terminals never seen by this processor and not in its registry: look them up before judging them."""
        slots, registry = self.slots, self.registry
        return sorted({t for t in terminals if t not in slots and t not in registry})

    def add_registry(self, found: Mapping[str, TerminalInfo]) -> None:
        """Registry facts of terminals looked up one by one (see :meth:`unknown`)."""
        self.registry.update(found)
        for terminal, info in found.items():
            slot = self.slots.get(terminal)
            if slot is not None:
                self.params.assign(slot, info)

    def set_registry(self, registry: Mapping[str, TerminalInfo]) -> None:
        """Replace the registry facts (rated speed, floors, model); takes effect on the next batch.

        Only the slots whose facts changed are re-assigned: every registry change is pushed (NOTIFY)
        and reloaded whole, and at 300,000 terminals most reloads change a handful of them.
        """
        old, self.registry = self.registry, dict(registry)
        slots, new = self.slots, self.registry
        changed = {t for t, info in new.items() if old.get(t) != info} | (old.keys() - new.keys())
        for terminal in changed:
            slot = slots.get(terminal)
            if slot is not None:
                self.params.assign(slot, new.get(terminal))

    # --- telemetry ----------------------------------------------------------------------------

    def messages(self, batch: Sequence[Telemetry]) -> Messages:
        """The messages of telemetry records of either form (in arrival order) as arrays."""
        parts: list[Messages] = []
        run: list[TelemetryRecord] = []
        for record in batch:
            if isinstance(record, TelemetryRecord):
                run.append(record)
                continue
            if run:
                parts.append(self._of_arrays(TelemetryArrays.from_records(run)))
                run = []
            parts.append(self._of_arrays(record))
        if run:
            parts.append(self._of_arrays(TelemetryArrays.from_records(run)))
        return Messages.concat(parts)

    def columns(self, batch: Sequence[Telemetry]) -> Columns:
        """The samples of telemetry records (in arrival order) as columns."""
        return self.messages(batch).samples

    def _of_arrays(self, arrays: TelemetryArrays) -> Messages:
        """Many messages as columns (``telemetry.columns.v1``): a slot look-up per distinct terminal,
        the sample arrays as they come (the record's ``code`` is the columns' packing)."""
        slot_of = self.slot
        slots = np.fromiter((slot_of(t) for t in arrays.terminals), np.int64, len(arrays.terminals))
        slot = np.take(slots, arrays.terminal)
        count = arrays.count.astype(np.int64)
        samples = Columns(np.repeat(slot.astype(np.int32), count), arrays.ts, arrays.speed, arrays.floor, arrays.code)
        return Messages(slot=slot, seq=arrays.seq, received=arrays.received_ms, count=count, samples=samples)

    @property
    def waiting(self) -> bool:
        """Held-back samples passed their watermark and wait for the next batch (an empty one releases them)."""
        return self.state.waiting

    def evaluate(
        self, columns: Columns, *, flush: bool = False, floor: np.ndarray[Any, np.dtype[np.int64]] | None = None
    ) -> tuple[list[FaultEvent], Detections]:
        """Evaluate a columnar batch; returns the fault events and the raw detections."""
        det = evaluate(
            columns,
            self.state,
            self.params,
            lateness_ms=self.lateness_ms,
            day_offset_ms=self.day_offset_ms,
            flush=flush,
            floor=floor,
        )
        return self._events(det), det

    def process(self, batch: Sequence[Telemetry], *, flush: bool = False) -> tuple[list[FaultEvent], Detections]:
        """Telemetry records of either form in, fault events out (offline clears first, then the rules).

        Message sequence numbers decide what can be judged at once (:mod:`liftwatch.rules.continuity`):
        a terminal whose messages arrived without a hole has all its samples evaluated now; copies
        of messages already judged are dropped (``Detections.duplicates``).
        """
        messages = self.messages(batch)
        if not len(messages):
            rule_events, det = self.evaluate(Columns.empty(), flush=flush)
            return rule_events, det
        slots, counts, columns = messages.slot, messages.count, messages.samples
        events = self._seen(slots, messages.received)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        if bool((counts > 0).all()):
            newest = np.maximum.reduceat(columns.ts, starts)
        else:  # an empty message (the schema refuses them; a hand-made record may not)
            newest = np.array(
                [int(columns.ts[a : a + c].max()) if c else NONE for a, c in zip(starts, counts, strict=True)], np.int64
            )
        self.state.grow(self.params.capacity)
        admission = self.continuity.admit(self.state, slots, messages.seq, newest, messages.received)
        floor = np.repeat(admission.floor, counts)
        if admission.duplicates:
            rows = np.repeat(admission.keep, counts)
            columns, floor = columns.take(rows), floor[rows]
        rule_events, det = self.evaluate(columns, flush=flush, floor=floor)
        det.duplicates = admission.duplicates
        return events + rule_events + self._judge_late(det.late_samples), det

    def _judge_late(self, late: Columns) -> list[FaultEvent]:
        """Judge samples that arrived after newer ones of their terminal were judged, in a lane of their own.

        A terminal that uploads its buffer after it resumed live sending (or a message that came
        after its hole was given up) delivers samples older than what the rules already judged. They
        cannot join the terminal's live timeline, so they are judged as a timeline of their own: the
        late lane keeps rule state over late samples only, continuing a terminal's late run while its
        late samples follow on (in order, less than ``LATE_RUN_GAP_MS`` apart), and starting afresh
        otherwise (timers start at the first late sample: no fault is assumed from before it). Its
        events carry ``evidence["late"] = True``; their event time is the samples', so the alert
        service opens the incident with both times (detected_at in the past, opened_at now).
        Unregistered terminals' late samples raise nothing (they raise nothing but
        ``unregistered_terminal``, which the live lane already did).
        """
        if not len(late):
            return []
        registered = np.take(self.params.registered, late.slot)
        if not registered.all():
            late = late.take(registered)
            if not len(late):
                return []
        st = self.late_state
        st.grow(self.params.capacity)
        # The samples come per terminal in arrival order. Within a batch a late run ends where it would
        # across batches (a sample older than the one before, or more than LATE_RUN_GAP_MS newer), so
        # the events do not depend on the batches; a terminal's runs are judged one after the other
        # (round k: every terminal's k-th run).
        terminal_start = np.concatenate(([True], late.slot[1:] != late.slot[:-1]))
        run_start = terminal_start.copy()
        step = late.ts[1:] - late.ts[:-1]
        run_start[1:] |= (step < 0) | (step > LATE_RUN_GAP_MS)
        run = np.cumsum(run_start) - 1
        rounds = run - np.maximum.accumulate(np.where(terminal_start, run, 0))
        events: list[FaultEvent] = []
        for k in range(int(rounds.max()) + 1):
            part = late if k == 0 and not rounds.any() else late.take(rounds == k)
            first = np.flatnonzero(np.concatenate(([True], part.slot[1:] != part.slot[:-1])))
            slots = part.slot[first].astype(np.intp)
            previous = st.max_ts[slots]
            start = part.ts[first]
            afresh = (previous == NONE) | (start < previous) | (start - previous > LATE_RUN_GAP_MS)
            if afresh.any():
                st.reset(slots[afresh])
            det = evaluate(part, st, self.params, lateness_ms=0, day_offset_ms=self.day_offset_ms, flush=True)
            events += self._events(det)
        for event in events:
            event.evidence["late"] = True
        return events

    def expire(self, now_ms: int) -> bool:
        """Give up sequence holes older than the allowed lateness (processing time: a silent terminal).

        True when some samples became releasable: evaluate an empty batch to judge them.
        """
        self.state.grow(self.params.capacity)
        return self.continuity.expire(self.state, now_ms)

    # --- terminal_offline (processing time) ---------------------------------------------------

    def seen(self, records: Sequence[TelemetryRecord]) -> list[FaultEvent]:
        """Note accepted messages; clears ``terminal_offline`` of the terminals that came back."""
        if not records:
            return []
        slots = self.slots_of(r.terminal for r in records)
        return self._seen(slots, np.fromiter((r.received_ms for r in records), np.int64, len(records)))

    def _seen(self, slots: np.ndarray[Any, Any], received: np.ndarray[Any, Any]) -> list[FaultEvent]:
        """:meth:`seen` on the messages' slots and gateway receive times (arrays in arrival order)."""
        self.state.grow(self.params.capacity)
        back = np.flatnonzero(self.state.offline[slots])
        events = []
        done: set[int] = set()
        for i in back.tolist():
            slot = int(slots[i])
            if slot in done:
                continue
            done.add(slot)
            since = int(received[i])
            events.append(
                self._event(FaultCode.TERMINAL_OFFLINE, "cleared", slot, since, since, {"received_ms": since})
            )
            self.state.offline[slot] = False
        np.maximum.at(self.state.last_seen, slots, received)
        return events

    def status(self, records: Sequence[StatusRecord]) -> None:
        """Note MQTT status announcements (``offline`` is the terminal's last will)."""
        self.state.grow(self.params.capacity)
        for record in records:
            slot = self.slot(record.terminal)
            self.state.grow(self.params.capacity)
            if record.status == "offline":
                self.state.offline_since[slot] = max(int(self.state.offline_since[slot]), record.received_ms)
            else:
                self.state.offline_since[slot] = NONE

    def offline(self, now_ms: int) -> list[FaultEvent]:
        """Raise ``terminal_offline`` for registered terminals silent for longer than the threshold."""
        n = len(self.terminals)
        if n == 0:
            return []
        st, p = self.state, self.params
        st.grow(p.capacity)
        model = p.model_idx[:n]
        last = st.last_seen[:n]
        lwt = st.offline_since[:n]
        silent = (last != NONE) & (now_ms - last > p.offline_ms[model])
        # A last will announced after the last message counts as the start of the silence.
        gone = (lwt != NONE) & (lwt >= last) & (now_ms - lwt > p.offline_ms[model])
        due = np.flatnonzero((silent | gone) & p.registered[:n] & p.offline_enabled[model] & ~st.offline[:n])
        events = []
        for slot in due.tolist():
            since = int(last[slot])
            evidence = {"last_message_ms": since, "last_will": bool(lwt[slot] != NONE and lwt[slot] >= last[slot])}
            events.append(self._event(FaultCode.TERMINAL_OFFLINE, "raised", slot, since, now_ms, evidence))
            st.offline[slot] = True
        return events

    # --- events -------------------------------------------------------------------------------

    def _event(
        self, code: FaultCode, transition: FaultTransition, slot: int, since: int, at: int, evidence: dict[str, Any]
    ) -> FaultEvent:
        terminal = self.terminals[slot]
        return FaultEvent(
            event_id=fault_event_id(terminal, code.value, transition, since),
            transition=transition,
            code=code,
            severity=FAULT_SEVERITY[code],
            terminal=terminal,
            registration_code=self.params.registration[slot],
            since_ms=since,
            at_ms=at,
            evidence=evidence,
        )

    def _events(self, det: Detections) -> list[FaultEvent]:
        s = det.samples
        events: list[FaultEvent] = []
        for rule, raised, pos, since in zip(
            det.rule.tolist(), det.raised.tolist(), det.pos.tolist(), det.since.tolist(), strict=True
        ):
            slot = int(s.slot[pos])
            at = int(s.ts[pos])
            evidence = self._evidence(rule, s, pos, slot)
            if raised:
                evidence["held_s"] = (at - since) / 1000
            else:
                evidence["false_for_s"] = (at - since) / 1000
            events.append(self._event(RULES[rule], "raised" if raised else "cleared", slot, since, at, evidence))
        for pos in det.unregistered.tolist():
            slot = int(s.slot[pos])
            at = int(s.ts[pos])
            evidence = {"ts": at, "mode": MODES[s.mode[pos]], "floor": int(s.floor[pos])}
            events.append(self._event(FaultCode.UNREGISTERED_TERMINAL, "raised", slot, at, at, evidence))
        return events

    def _evidence(self, rule: int, s: Columns, pos: int, slot: int) -> dict[str, Any]:
        """The deciding sample and the rule's own evidence fields (its catalog spec's)."""
        evidence: dict[str, Any] = {
            "ts": int(s.ts[pos]),
            "mode": MODES[s.mode[pos]],
            "floor": int(s.floor[pos]),
            "speed": float(s.speed[pos]),
            "door": DOOR_STATES[s.door[pos]],
            "door_zone": bool(s.door_zone[pos]),
            "occupied": bool(s.occupied[pos]),
        }
        p = self.params
        model = int(p.model_idx[slot])
        for name in _RULE_EVIDENCE[rule]:
            evidence[name] = EVIDENCE[name](s, p, pos, slot, model)
        return evidence

    # --- snapshots (checkpoints) --------------------------------------------------------------

    def snapshot(self, terminals: Sequence[str]) -> bytes:
        """The state of some terminals (rows and held-back samples), compressed, for a checkpoint."""
        slots = self.slots_of(terminals)
        self.state.grow(self.params.capacity)
        rows = self.state.rows(slots)
        held = self.state.held(slots)
        position = {int(slot): i for i, slot in enumerate(slots.tolist())}
        held_index = np.fromiter((position[int(x)] for x in held.slot.tolist()), np.int64, len(held))
        arrays: dict[str, Any] = {f"row_{k}": v for k, v in rows.items()}
        arrays.update({f"held_{k}": v for k, v in held.raw().items() if k != "slot"})
        arrays["held_index"] = held_index
        arrays["beyond_index"], arrays["beyond_seq"], arrays["beyond_newest"] = self.continuity.held_rows(slots)
        skipped = self.continuity.skipped_rows(slots)
        names = ("skipped_index", "skipped_lo", "skipped_hi", "skipped_after", "skipped_newest")
        arrays.update(zip(names, skipped, strict=True))
        self.late_state.grow(self.params.capacity)
        arrays.update({f"late_{k}": v for k, v in self.late_state.rows(slots).items()})
        arrays["terminals"] = np.asarray(list(terminals), dtype=np.str_)
        arrays["version"] = np.asarray([SNAPSHOT_VERSION])
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return bytes(cramjam.zstd.compress(buffer.getbuffer(), level=SNAPSHOT_ZSTD_LEVEL))

    def restore(self, blob: bytes) -> list[str]:
        """Load a snapshot (replacing the state of its terminals); returns the terminals restored."""
        try:
            if blob[:4] == _ZSTD_MAGIC:
                blob = bytes(cramjam.zstd.decompress(blob))
            with np.load(io.BytesIO(blob), allow_pickle=False) as data:
                version = int(data["version"][0])
                if version not in (2, 3, SNAPSHOT_VERSION):
                    raise CheckpointError(f"checkpoint version {version} is not {SNAPSHOT_VERSION}")
                terminals = [str(t) for t in data["terminals"].tolist()]
                renamed = V3_NAMES if version < 4 else {}
                rows = {renamed.get(k[4:], k[4:]): data[k] for k in data.files if k.startswith("row_")}
                held = {k[5:]: data[k] for k in data.files if k.startswith("held_") and k != "held_index"}
                held_index = data["held_index"]
                beyond = tuple(data[k] for k in ("beyond_index", "beyond_seq", "beyond_newest")) if version > 2 else ()
                late_rows = {renamed.get(k[5:], k[5:]): data[k] for k in data.files if k.startswith("late_")}
                # skipped ranges came within version 3: a checkpoint without them has none to restore
                skipped = tuple(
                    data[f"skipped_{k}"] for k in ("index", "lo", "hi", "after", "newest") if "skipped_index" in data
                )
        except (OSError, ValueError, KeyError, cramjam.DecompressionError) as error:
            raise CheckpointError(f"unreadable checkpoint: {error}") from error
        slots = self.slots_of(terminals)
        self.state.grow(self.params.capacity)
        self.state.reset(slots)
        self.continuity.forget(slots)
        self.state.load_rows(slots, rows)
        self.late_state.grow(self.params.capacity)
        self.late_state.reset(slots)
        self.late_state.load_rows(slots, late_rows)
        if beyond:
            self.continuity.load_rows(slots, *beyond)
        if skipped:
            self.continuity.load_skipped(slots, *skipped)
        if held_index.shape[0]:
            self.state.hold(Columns.from_raw(slot=slots[held_index], **held))
        return terminals

    def forget(self, terminals: Sequence[str]) -> None:
        """Drop the state of terminals whose partition this process no longer owns."""
        known = [t for t in terminals if t in self.slots]
        if known:
            self.state.grow(self.params.capacity)
            slots = self.slots_of(known)
            self.state.reset(slots)
            self.continuity.forget(slots)
            self.late_state.grow(self.params.capacity)
            self.late_state.reset(slots)
