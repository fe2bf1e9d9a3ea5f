"""The local CDC pipeline's own parts (Cassandra -> Debezium -> Kafka -> here -> PostgreSQL).

``events`` decodes the Debezium Cassandra connector's change events, ``sink`` consumes them
from Kafka and ``target`` writes them into the target PostgreSQL, ``writer`` loads the demo
tables through the pipeline and keeps writing.
cdcrecon (``reconciliation``) never imports this package: it only reads the two stores.
"""
