"""Experiments: build plans -> score them -> write a table (through the result cache)."""
