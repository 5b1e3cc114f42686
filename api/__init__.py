"""The HTTP layer: a Litestar app over an orchestrator. ``create_app`` is the entry point."""
