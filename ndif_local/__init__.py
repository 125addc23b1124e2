"""A real NDIF server (PyPI ndif 0.1.2) on 127.0.0.1 for tests and demos; see stack.py."""
