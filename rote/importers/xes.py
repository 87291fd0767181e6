"""Streamed XES (IEEE 1849-2016) import: one flat row per event, in constant memory.

XES logs from process-mining tools run to gigabytes, so the file is walked with `lxml.etree.iterparse` and
each ``<event>`` is cleared once read. An event becomes a row of its attributes by key (``concept:name``,
``time:timestamp``, ``org:resource`` ...), its trace's attributes prefixed with ``case:`` as process-mining
CSV exports write them, and the log's global event attributes as defaults. Nested (list/container)
attributes are kept by their own key only. Entities are not resolved and nothing is fetched from the
network, so a hostile file cannot read local files or expand into gigabytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rote.errors import ImportFormatError
from rote.importers.sniff import open_binary

#: XES attribute element names; their `key` and `value` make one attribute.
ATTRIBUTE_TAGS = frozenset({"string", "date", "int", "float", "boolean", "id", "list", "container"})


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


class XesError(ImportFormatError):
    """The XML broke off or is not XES; `line` is where, `rows` how many events were read before."""

    def __init__(self, message: str, *, line: int, rows: int) -> None:
        super().__init__(message)
        self.line = line
        self.rows = rows


def iter_xes_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(source line, attributes) for every event of the log, in file order.

    Raises `XesError` when the XML is broken (after yielding every event before the break) and
    `ImportFormatError` when the file is XML but not an XES log.
    """
    from lxml import etree

    rows = 0
    trace_attrs: dict[str, str] = {}
    event_defaults: dict[str, str] = {}
    trace_defaults: dict[str, str] = {}
    seen_log = False
    with open_binary(path) as fh:
        parser = etree.iterparse(
            fh,
            events=("start", "end"),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            remove_comments=True,
            huge_tree=False,
        )
        stack: list[str] = []
        try:
            for kind, elem in parser:
                tag = _local(elem.tag)
                if kind == "start":
                    if not stack and tag != "log":
                        raise ImportFormatError(f"{path.name} is XML but not an XES log (root <{tag}>)")
                    seen_log = seen_log or tag == "log"
                    if tag == "trace":
                        trace_attrs = {f"case:{k}": v for k, v in trace_defaults.items()}
                    stack.append(tag)
                    continue
                stack.pop()
                parent = stack[-1] if stack else ""
                if tag in ATTRIBUTE_TAGS:
                    key, value = elem.get("key"), elem.get("value")
                    if key is None or value is None:
                        continue
                    if parent == "trace":
                        trace_attrs[f"case:{key}"] = value
                    elif parent == "global" and value != NO_VALUE:
                        target = trace_defaults if _global_scope(elem) == "trace" else event_defaults
                        target[key] = value
                elif tag == "event" and parent == "trace":
                    row = dict(event_defaults)
                    for child in elem:
                        if _local(child.tag) in ATTRIBUTE_TAGS:
                            key, value = child.get("key"), child.get("value")
                            if key is not None and value is not None:
                                row[key] = value
                    row.update(trace_attrs)
                    rows += 1
                    yield (elem.sourceline or 0), row
                    _release(elem)
                elif tag == "trace":
                    _release(elem)
        except etree.XMLSyntaxError as exc:
            line = exc.lineno if isinstance(exc.lineno, int) else 0
            if rows == 0 and not seen_log:
                raise ImportFormatError(f"{path.name} is not XML: {exc.msg}") from None
            raise XesError(
                f"{path.name}: the XML breaks off at line {line} ({exc.msg}); "
                f"{rows} events before it were read",
                line=line,
                rows=rows,
            ) from None
    if not seen_log:
        raise ImportFormatError(f"{path.name} is not an XES log")


#: ProM's global default for an attribute that has no default ("no value"): an event without the
#: attribute is missing it, not named `__INVALID__` (a new user's ProM export made one such action).
NO_VALUE = "__INVALID__"


def _global_scope(elem: Any) -> str:
    parent = elem.getparent()
    return str(parent.get("scope", "event")) if parent is not None else "event"


def _release(elem: Any) -> None:
    """Free an element and the siblings already read, so memory stays flat on a large log."""
    elem.clear(keep_tail=True)
    parent = elem.getparent()
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]
