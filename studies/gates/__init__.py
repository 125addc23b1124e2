"""Conditional steering (gates): fit a projection gate on labelled prompts, and measure the side effect a gate
removes and the target effect it keeps (gated vs ungated text - code steering on held-out documents).

The gate itself is core (steer_trace/gates.py, steer_trace/gate_fit.py); modules here: cli (fit, experiment,
report), experiment (the cached runs and the paired summary), report (docs page and README block).
"""
from ..protocol import Study

STUDY = Study(
    name="gates",
    summary="Conditional steering: fit a gate (CAST) on labelled prompts; gated vs ungated side effects.",
    cli="studies.gates.cli:group",
    report="studies.gates.report:report",
    pages="studies.gates.pages:pages",
)
