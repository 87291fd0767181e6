"""JSON Schema files for producers in other languages, generated from `streams/schemas.py`.

The pydantic models are the single source of truth; the files under `streams/jsonschema/` are derived
and committed so that a Go or TypeScript producer can validate without Python. `check()` (run in CI)
fails when a model changed and the files were not regenerated.
"""

from __future__ import annotations

import json
from pathlib import Path

from rote.streams.schemas import SCHEMAS, json_schema

SCHEMA_DIR = Path(__file__).resolve().parent / "jsonschema"


def render() -> dict[str, str]:
    """File name -> content for every event schema."""
    out = {}
    for name, model in SCHEMAS.items():
        version = model.model_fields["schema_version"].default
        out[f"{name}.v{version}.json"] = json.dumps(json_schema(model), indent=2, sort_keys=True) + "\n"
    return out


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, text in render().items():
        path = directory / fname
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of files that are missing, different from the models, or left over from a removed model."""
    want = render()
    problems = [
        f for f, text in want.items() if not (directory / f).is_file() or (directory / f).read_text() != text
    ]
    if directory.is_dir():
        problems += [p.name for p in directory.glob("*.json") if p.name not in want]
    return sorted(problems)
