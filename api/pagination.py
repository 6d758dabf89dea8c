"""Keyset pagination cursors: opaque to clients, validated on the way in."""

from __future__ import annotations

import base64
import binascii

from liftwatch.api.errors import ApiError


def encode_cursor(*values: int | str) -> str:
    """An opaque cursor for the position after the last item of a page."""
    text = "\x1f".join(str(v) for v in values)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor_parts(cursor: str) -> list[str]:
    """The values of a cursor made by :func:`encode_cursor` (400 ``invalid_cursor`` otherwise)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.urlsafe_b64decode(padded.encode()).decode().split("\x1f")
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise ApiError("invalid_cursor", 400) from error


def decode_cursor(cursor: str) -> int:
    """The single integer of an id cursor."""
    parts = decode_cursor_parts(cursor)
    if len(parts) != 1 or not parts[0].isdigit() or len(parts[0]) > 18:
        raise ApiError("invalid_cursor", 400)
    return int(parts[0])
