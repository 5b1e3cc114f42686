"""The application layer: the unit of work, the command path, background loops and the services on them.

Private: the public face is ``chronik.Engine``. Everything here reads and writes
PostgreSQL only through ``chronik.adapters.postgres``, and decides only through
``chronik.core``.
"""
