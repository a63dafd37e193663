"""python -m sinkbench run|compare|report|expect ...: the same as the `sinkbench` console script."""
import sys

from sinkbench.run.cli import main

sys.exit(main())
