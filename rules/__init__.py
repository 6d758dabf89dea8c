"""liftwatch.rules: the vectorized fault rule engine (pure core in ``engine``, Kafka adapter in ``service``)."""
