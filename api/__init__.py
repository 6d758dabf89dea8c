"""liftwatch.api"""
