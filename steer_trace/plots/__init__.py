"""Figures, one function per figure, built from cached result tables only (never a model)."""
