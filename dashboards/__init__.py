"""liftwatch.dashboards: Grafana dashboards kept as JSON in this folder, and `liftwatch dashboards push`."""
