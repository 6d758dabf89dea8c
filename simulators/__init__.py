"""liftwatch.simulators"""
