"""python -m benchmarks [options]: the same command as `steer-trace bench` (through the CLI,
so mistakes are one `error:` line)."""
import sys

from tasks.cli import main

if __name__ == "__main__":
    main(["bench", *sys.argv[1:]], prog_name="python -m benchmarks")
