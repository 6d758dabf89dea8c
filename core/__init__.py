"""liftwatch: remote monitoring of elevators (telemetry ingest, fault rules, incidents, statistics)."""

__version__ = "0.1.0"
