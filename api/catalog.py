"""``GET /api/v1/catalog``: the incident lifecycle's and the fault catalog's words, as their owners
declare them (``liftwatch.alerts.lifecycle``, ``liftwatch.schema``), so the console derives its lists
instead of retyping them. Actions are spelled as the API's paths spell them."""

from __future__ import annotations

from fastapi import APIRouter
from liftwatch.alerts import lifecycle
from liftwatch.api import access
from liftwatch.api.deps import Reader
from liftwatch.api.models import ACTION_NAMES, Catalog, CatalogFault, CatalogStatus
from liftwatch.schema import FAULT_SEVERITY, IncidentStatus, Severity

router = APIRouter(tags=["session"])


def build_catalog() -> Catalog:
    """The catalog, built from the owners (the part that is the same for every caller)."""
    return Catalog(
        statuses=[
            CatalogStatus(
                status=status,
                open=lifecycle.is_open(status),
                at_risk=status in lifecycle.AT_RISK_STATUSES,
                actions=[ACTION_NAMES[action] for action in lifecycle.actions(status)],
            )
            for status in IncidentStatus
        ],
        close_causes=list(lifecycle.CloseCause),
        max_escalation_level=lifecycle.MAX_ESCALATION_LEVEL,
        severities=list(Severity),
        faults=[CatalogFault(code=code, severity=severity) for code, severity in FAULT_SEVERITY.items()],
    )


_CATALOG = build_catalog()


@router.get("/api/v1/catalog", response_model=Catalog)
async def catalog(principal: Reader) -> Catalog:
    """Incident statuses (open, at risk, the actions each accepts), close causes, severities, fault
    codes, and which actions the caller may take (so the console offers no button it would refuse)."""
    mine = [ACTION_NAMES[action] for action in lifecycle.Action if access.may_take(principal, action)]
    return _CATALOG.model_copy(update={"your_actions": mine})
