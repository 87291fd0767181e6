"""`rote run`: the whole pipeline in one process on one broker, fed by a replayed UI log.

`run.py` wires the tasks together on the Faust worker's loop; each task lives in its own module
(`replay`, `recorder`, `watch`, ...) and `summary.py` turns the run's archive into the summary.
"""

from rote.pipeline.options import RunOptions
from rote.pipeline.run import make_worker, run, serve_metrics

__all__ = ["RunOptions", "make_worker", "run", "serve_metrics"]
