"""Adapters on top of the bus: they reach the bridges only through commands and events."""
