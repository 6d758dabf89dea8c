"""The same telemetry messages in either Kafka form, as the rules read them.

``telemetry.v1`` carries one message a record; ``telemetry.columns.v1`` many, as packed arrays. The
columns records here go through the wire (encode, decode, ``TelemetryArrays.from_record``), so a
test that feeds both forms checks the packing the service reads too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from liftwatch.columnar import TelemetryArrays
from liftwatch.rules.processor import Telemetry
from liftwatch.schema import TelemetryColumns, TelemetryRecord, decode_telemetry, encode_record

Form = Literal["messages", "columns", "mixed"]
FORMS: tuple[Form, ...] = ("messages", "columns", "mixed")


def columns_record(messages: Sequence[TelemetryRecord]) -> TelemetryArrays:
    """Consecutive messages as one columns record, read back from its bytes."""
    record = decode_telemetry(encode_record(TelemetryArrays.from_records(messages).to_record()))
    assert isinstance(record, TelemetryColumns)
    return TelemetryArrays.from_record(record)


def as_sent(messages: Sequence[TelemetryRecord], form: Form, rng: Any) -> list[Telemetry]:
    """``messages`` (in arrival order) as records of ``form``: one a message, consecutive runs of 1-12
    messages packed as columns, or runs of both forms."""
    if form == "messages":
        return list(messages)
    out: list[Telemetry] = []
    i = 0
    while i < len(messages):
        n = int(rng.integers(1, 13))
        run = messages[i : i + n]
        if form == "mixed" and rng.random() < 0.5:
            out.extend(run)
        else:
            out.append(columns_record(run))
        i += n
    return out
