"""chronik's SQL, shipped as package data: numbered migrations and named query blocks."""
