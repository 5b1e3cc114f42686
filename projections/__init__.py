"""Projectors: fold events into read models. ``jobs`` is written inline, with each append."""
