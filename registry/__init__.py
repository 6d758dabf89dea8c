"""The equipment registry: the typed row (:mod:`.model`), the CSV parser (:mod:`.parse`), the
import into PostgreSQL (:mod:`.importer`) and the ``liftwatch registry`` command (:mod:`.cli`).
"""
