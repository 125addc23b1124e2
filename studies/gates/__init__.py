"""Conditional steering (gates): the side effect a gate removes and the target effect it keeps.

`steer-trace gates experiment` (studies/gates/cli.py) runs studies/gates/experiment.py; the gate itself
is core (steer_trace/gates.py, steer_trace/gate_fit.py, `steer-trace gates fit`)."""
