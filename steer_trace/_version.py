"""The package version: the one source (pyproject.toml reads it too), importable without the package."""

__version__ = "0.1.0"
