"""liftwatch.rules"""
