"""liftwatch.alerts"""
