"""Action abstraction: what makes two user actions "the same step".

An action is abstracted to a *label*, ``action_type:target-key``. The target key names *where* the action
happened (a form field, a spreadsheet column, a UI element, a page), never *what* was typed or copied:
concrete values (the name pasted, the row of the cell read) vary between instances of a routine and become
the step's parameters instead. Getting this right is the whole game: too fine (include the row, the value)
and no two instances look alike; too coarse (the action type alone) and different routines blur together.

The key is the first of these that the event has (the order is configurable):

``field``   the logical field (form label / input name): ``paste:Email``
``column``  spreadsheet sheet and column, *without the row*: ``getCell:Sheet1!B``
``element`` the UI element's id: ``clickButton:submit-btn`` (an id of digits only, a tab's handle: ``#``)
``title``   the element's visible text: ``clickButton:Submit``
``url``     for navigation actions only, the URL without query and with digits masked: ``goToUrl:site/form/#``
``file``    for file actions only, the workbook/sheet: ``openFile:data.xls``; for sheet actions the
            worksheet: ``selectWorksheet:Student details``

Events with none of these keep the bare action type (``copy`` from the OS clipboard).
"""

from __future__ import annotations

import re
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rote.streams.schemas import Target, UserAction

_DIGITS = re.compile(r"\d+")

KEY_FIELDS: tuple[str, ...] = ("field", "column", "element", "title", "url", "file")
#: A longer target key is cut to this many characters plus a digest of the whole, so labels (which the
#: state stores once per label) stay short while distinct keys stay distinct.
MAX_KEY_CHARS = 120


@dataclass(frozen=True, kw_only=True)
class ActionAbstraction:
    """Which target attributes name a step; see the module docstring."""

    #: Target attributes tried in order; the first present one becomes the key.
    key_order: tuple[str, ...] = KEY_FIELDS
    #: Action types for which the URL is a meaningful key (elsewhere the URL is just the current page).
    navigation_types: frozenset[str] = frozenset(
        {"goToUrl", "waitResponse", "navigate_to", "navigate", "openUrl", "clickLink", "createNewTab"}
    )
    #: Action types for which the file/workbook is a key.
    file_types: frozenset[str] = frozenset({"openFile", "saveFile", "openWorkbook", "closeFile"})
    #: Action types for which the worksheet is a key (switching to the "Student details" sheet and to the
    #: "Reimbursement details" sheet are two different steps).
    sheet_types: frozenset[str] = frozenset(
        {"selectWorksheet", "selectSheet", "activateSheet", "addWorksheet"}
    )
    #: Prefix the application name (``Excel/getCell:...``); off because action types already imply it.
    include_app: bool = False
    #: Mask digits in element ids and URLs (generated ids like ``input_17`` vary between page loads).
    mask_digits_in_urls: bool = True

    def key(self, target: Target, action_type: str) -> str | None:
        if self.key_order == KEY_FIELDS:
            return self._default_key(target, action_type)
        for name in self.key_order:
            value: str | None = None
            if name == "field":
                value = target.field
            elif name == "column":
                if target.column:
                    value = f"{target.sheet}!{target.column}" if target.sheet else target.column
            elif name == "element":
                value = _element_key(target.element)
            elif name == "title":
                value = target.title
            elif name == "url":
                if action_type in self.navigation_types and target.url:
                    value = _url_pattern(target.url, mask=self.mask_digits_in_urls)
            elif name == "file" and action_type in self.file_types:
                value = target.workbook or target.sheet
            elif name == "file" and action_type in self.sheet_types:
                value = target.sheet
            if value:
                return value.strip()
        return None

    def _default_key(self, t: Any, action_type: str) -> str | None:
        """`key` for the default order, unrolled: it runs for every action of every user."""
        v = t.field
        if v:
            return v.strip()
        v = t.column
        if v:
            sheet = t.sheet
            return (f"{sheet}!{v}" if sheet else v).strip()
        v = _element_key(t.element) or t.title
        if v:
            return v.strip()
        if action_type in self.navigation_types:
            v = t.url
            if v:
                return _url_pattern(v, mask=self.mask_digits_in_urls).strip() or None
        if action_type in self.file_types:
            v = t.workbook or t.sheet
            if v:
                return v.strip()
        elif action_type in self.sheet_types:
            v = t.sheet
            if v:
                return v.strip()
        return None

    def label(self, action: UserAction) -> str:
        return self.label_of(action.app, action.action_type, action.target)

    def labeler(self) -> Callable[[str, str, Any], str]:
        """`label_of` as one function specialised to this configuration (it runs for every action of every
        user: the default key order is unrolled, without the method calls)."""
        if self.key_order != KEY_FIELDS or self.include_app:
            return self.label_of
        nav, files, sheets, mask = (
            self.navigation_types,
            self.file_types,
            self.sheet_types,
            self.mask_digits_in_urls,
        )
        intern = sys.intern

        def label(app: str, action_type: str, t: Any) -> str:
            v = t.field
            if not v:
                v = t.column
                if v:
                    sheet = t.sheet
                    if sheet:
                        v = f"{sheet}!{v}"
                else:
                    v = _element_key(t.element) or t.title
                    if not v:
                        if action_type in nav:
                            url = t.url
                            v = _url_pattern(url, mask=mask) if url else None
                        elif action_type in files:
                            v = t.workbook or t.sheet
                        elif action_type in sheets:
                            v = t.sheet
            if v:
                v = v.strip()
            if not v:
                return intern(action_type)
            if len(v) > MAX_KEY_CHARS:
                v = f"{v[:MAX_KEY_CHARS]}~{zlib.crc32(v.encode('utf-8', 'surrogatepass')):08x}"
            return intern(f"{action_type}:{v}")

        return label

    def label_of(self, app: str, action_type: str, target: Target) -> str:
        """The label, interned (labels are compared and hashed on every action)."""
        key = self.key(target, action_type)
        base = f"{app}/{action_type}" if self.include_app else action_type
        if not key:
            return sys.intern(base)
        if len(key) > MAX_KEY_CHARS:
            digest = zlib.crc32(key.encode("utf-8", "surrogatepass"))
            key = f"{key[:MAX_KEY_CHARS]}~{digest:08x}"
        return sys.intern(f"{base}:{key}")


def _element_key(element: str | None) -> str | None:
    """An element id made only of digits (a browser tab's or window's handle) names no place: ``#``."""
    if element and element.strip().isdigit():
        return "#"
    return element


def _url_pattern(url: str, *, mask: bool) -> str:
    text = url.split("?", 1)[0].split("#", 1)[0]
    for prefix in ("https://", "http://"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    text = text.rstrip("/")
    return _DIGITS.sub("#", text) if mask else text
