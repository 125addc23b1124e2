"""The paper's studies on top of the steer_trace core, one package per study.

Each `studies/<name>/__init__.py` defines `STUDY = Study(...)` (studies/protocol.py); the registry
(studies/registry.py) finds them, and the CLI, `steer-trace figures` and `steer-trace report` iterate over it.
Studies import the core (`steer_trace`); the core never imports a study.
"""
