"""`python -m rote.pipeline_bench`: the benchmark's own entry (and its framework legs' child processes)."""

import os
import sys

from rote.pipeline_bench import _main

os.environ.setdefault("PYTHONUNBUFFERED", "1")
sys.exit(_main())
