import sys

from ._runner.cli import main

# Guarded: spawn and forkserver workers import the main module again, as
# __mp_main__, and must not start a second run.
if __name__ == "__main__":
    sys.exit(main())
