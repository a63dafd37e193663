"""python -m sinkbench run|compare|report|expect ...: the same as the `sinkbench` console script."""
import sys

from .cli import main

sys.exit(main())
