"""Route handlers, one module per audience."""
