"""liftwatch.ingest"""
