"""Errors the HTTP API answers with: a stable machine code, an HTTP status, translated text.

Every error body is ``{"error": {"code": <stable code>, "message": <text in Accept-Language>}}``
(plus ``details`` for validation errors). The code never changes; the message is for people.
"""

from __future__ import annotations

from liftwatch.errors import LiftwatchError


class ApiError(LiftwatchError):
    """An error answered to the caller; ``reason`` is the stable code, ``status`` the HTTP status."""

    status: int = 400

    def __init__(self, code: str, http_status: int, /, headers: dict[str, str] | None = None, **params: object) -> None:
        super().__init__(code, reason=code)
        self.status = http_status
        self.params = params
        self.headers = headers or {}


def not_found(what: str = "not_found") -> ApiError:
    """404 for an object that does not exist *or that the caller may not see* (never 403 for those)."""
    return ApiError(what, 404)


def forbidden() -> ApiError:
    """403: the caller's role may not use this endpoint at all."""
    return ApiError("forbidden", 403)


def unauthenticated() -> ApiError:
    """401: no token, or a token that is unknown or revoked."""
    return ApiError("unauthenticated", 401)


def too_many_streams(retry_after_s: int) -> ApiError:
    """429: the caller (or this API process) holds as many live-feed streams as allowed."""
    return ApiError("too_many_streams", 429, headers={"Retry-After": str(retry_after_s)})
