"""chronik's ports to the outside world: PostgreSQL, the embedded server, and more to come."""
