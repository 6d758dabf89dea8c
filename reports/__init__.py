"""liftwatch.reports: regulator statistics and monthly reports."""
