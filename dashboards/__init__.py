"""liftwatch.dashboards"""
