"""The composition: the ``liftwatch`` command that wires every package's sub-commands (:mod:`.cli`),
``liftwatch up``/``demo`` that run the whole platform in one process (:mod:`.up`), and the local
services (tansu, mosquitto, PostgreSQL) started when none is configured (:mod:`.services`).

It sits on top of every other package; the shared core (``liftwatch``) imports none of them.
"""
