"""The project's benchmarks (not part of the installed library).

`python -m benchmarks` (or `steer-trace bench` in a clone) runs the side-by-side
comparisons of `harness.py` and prints ratios; `python -m benchmarks.gpu` is the
prepared GPU script. They need the optional extra `bench` (steering-vectors).
"""
