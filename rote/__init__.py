"""rote: find the rote work in people's computer use and take it off their hands.

The design card keeps `streams/`, `agents/`, `sandbox_runner/` and `dashboards/` at the top of the
repository, but a wheel installs them as `rote.streams`, `rote.agents`, ... so that a generic name
like `agents` never shadows another distribution's package. In a source checkout (editable install,
or running from the tree) those folders sit beside this one, so the package path is widened to find
them there too; in an installed wheel they are real subpackages and nothing is added.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

_checkout = Path(__file__).resolve().parent.parent
if (_checkout / "pyproject.toml").is_file() and (_checkout / "streams" / "__init__.py").is_file():
    __path__.append(str(_checkout))
