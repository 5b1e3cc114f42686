"""PostgreSQL: migrations, the event store, the step queue and LISTEN/NOTIFY."""
