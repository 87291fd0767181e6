"""Redaction of user actions: what is typed into password fields is dropped, identifiers are pseudonymised.

Two entry points over one core:

* `Redactor.redact_payload(dict) -> dict` for the unvalidated UserAction-shaped dicts that the importers
  and the producer API build (unknown keys, numbers where strings belong and raw logger rows that failed to
  map are scrubbed too, since they end up in topics and dead letters all the same);
* `Redactor.redact_action(obj)` for the worker's hot path: any object with UserAction's attribute names
  (a msgspec Struct, a pydantic model, a dataclass). It returns the *same object* when nothing changes
  and a replaced copy otherwise (`msgspec.structs.replace`, `model_copy(update=...)`, `dataclasses.replace`);
  the input is never mutated.

Redacting twice changes nothing (tokens and markers are left alone), so producer, importer and ingress can
all redact without coordinating. Cost: strings that held nothing are remembered (labels, app names and URLs
repeat endlessly), so a typical action costs a few dictionary look-ups; see `rote bench --only redaction`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from fnmatch import fnmatchcase
from functools import lru_cache
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit, urlunsplit

from rote.privacy.config import RedactionConfig, load_key
from rote.privacy.detect import TEXT_CLASSES, scan
from rote.privacy.labels import is_password_type, label_kinds
from rote.privacy.secrets import SecretMemory
from rote.privacy.tokens import MARKERS, PASSWORD_MARKER, pseudonym

T = TypeVar("T")

#: Target attributes holding text that may contain identifiers (cell, column and row are addresses).
TARGET_TEXT_FIELDS: tuple[str, ...] = ("field", "element", "workbook", "sheet", "url", "file", "title")
#: Attribute keys (lower case, any logger prefix such as `target.` removed) that name the field a value is
#: typed into: they give the context for a password field or a "Phone" field.
_LABEL_KEYS = frozenset(
    {"name", "id", "label", "placeholder", "arialabel", "autocomplete", "title", "field", "key"}
    # the names browser extensions and trackers give them (compared without "_" and "-")
    | {"fieldname", "inputname", "elementname", "labeltext", "fieldlabel", "caption"}
)
#: Attribute keys that carry the typed content itself (replaced by the marker in a password field).
_CONTENT_KEYS = frozenset(
    {"value", "content", "text", "innertext", "innerhtml", "outerhtml", "textcontent", "data", "clipboard"}
)
#: Top-level payload keys that hold no user text (never scanned).
_STRUCTURAL_KEYS = frozenset(
    {"event_id", "timestamp", "app", "action_type", "source", "schema_version", "duration_seconds"}
)
_IDENTITY_KEYS: tuple[str, ...] = ("user_id", "session_id", "device")
#: What the hot path reads off a target, in this order (element_type last: it is context, and scanned).
_TARGET_GET_FIELDS: tuple[str, ...] = (*TARGET_TEXT_FIELDS, "element_type")
_NO_TARGET: tuple[None, ...] = (None,) * len(_TARGET_GET_FIELDS)
#: Strings longer than this are not remembered as clean (bounded memory).
_MAX_CACHED_CHARS = 256
_MAX_CACHE_ENTRIES = 200_000
_UNCHANGED: Any = object()


class _Roles(NamedTuple):
    """Attribute keys that describe the field, and an itemgetter of their values (None when none); and the
    keys that are named as a password field themselves (`{"password": ...}`: their value is one)."""

    items: tuple[tuple[str, str], ...]
    getter: Any
    secret: tuple[str, ...] = ()


_NO_ROLES = _Roles((), None)


#: Nesting depth of unknown payload values the redactor scans (deeper: replaced whole, see `_scrub`).
_MAX_SCRUB_DEPTH = 32
_NESTED = "<nested>"


def _short_key(key: str) -> str:
    return key.rsplit(".", 1)[-1].lower()


class Redactor:
    """Redact user actions under one configuration and one key (see module docstring for the contract)."""

    def __init__(self, config: RedactionConfig | None = None, *, key: bytes | None = None) -> None:
        self.config = config if config is not None else RedactionConfig.from_env()
        self.classes = self.config.classes
        self.text_classes = frozenset(c for c in TEXT_CLASSES if c in self.classes)
        self.enabled = bool(self.classes)
        # A configured key or an existing key file is read (and checked) now; a missing key file is created
        # only when something is pseudonymised, so a run refused for bad input leaves its state dir as it was.
        self._key: bytes | None = key
        if key is None and self.text_classes and (self.config.pseudonym_key or self.config.key_path.exists()):
            self._key = load_key(self.config)
        # Strings seen before: clean ones, and what the others became. Process memory only, bounded;
        # lets a worker skip the scan for the labels, URLs and values that recur in every routine.
        self._clean: set[str | None] = {None}
        self._dirty: dict[str, str] = {}
        self._ctx_memo: dict[tuple[frozenset[str], str], str] = {}
        self._action_ctx_cache: dict[str, frozenset[str]] = {}
        self._roles_cache: dict[tuple[Any, ...], _Roles] = {}
        self._ctx_cache: dict[tuple[Any, ...], frozenset[str]] = {}
        self._getters: dict[type, Any] = {}
        c = self.config
        self._deny_apps, self._deny_urls = c.redact_deny_apps, c.redact_deny_urls
        self._allow_apps, self._allow_urls = c.redact_allow_apps, c.redact_allow_urls
        self._policy_cache: dict[tuple[str | None, str | None], str] = {}
        self._has_lists = bool(self._deny_apps or self._deny_urls or self._allow_apps or self._allow_urls)
        # what was typed into password fields, hidden wherever it is typed later (rote.privacy.secrets)
        self._secrets = SecretMemory()

    # --------------------------------------------------------------------------------------------------
    # text
    # --------------------------------------------------------------------------------------------------

    def redact_text(self, text: str, context: frozenset[str] = frozenset()) -> str:
        """`text` with every identifier of an enabled class replaced by its token or marker."""
        if not context:
            if text in self._clean:
                return text
            known = self._dirty.get(text)
        else:
            known = self._ctx_memo.get((context, text))
        if known is not None:
            return text if known == text else known
        if self._secrets and "password" in self.classes and self._secrets.holds(text):
            return PASSWORD_MARKER  # a password typed somewhere else too (a chat box, a search field)
        findings = scan(text, self.text_classes, context) if self.text_classes else []
        if not findings:
            if len(text) <= _MAX_CACHED_CHARS:
                if context:
                    self._remember_in_context(context, text, text)
                else:
                    if len(self._clean) >= _MAX_CACHE_ENTRIES:
                        self._clean.clear()
                        self._clean.add(None)
                    self._clean.add(text)
            return text
        if self._key is None:
            self._key = load_key(self.config)
        out: list[str] = []
        pos = 0
        for f in findings:
            out.append(text[pos : f.start])
            out.append(f.marker if f.marker is not None else pseudonym(self._key, f.kind, f.normalised or ""))
            pos = f.end
        out.append(text[pos:])
        redacted = "".join(out)
        if len(text) <= _MAX_CACHED_CHARS:
            if context:
                self._remember_in_context(context, text, redacted)
            else:
                if len(self._dirty) >= _MAX_CACHE_ENTRIES:
                    self._dirty.clear()
                self._dirty[text] = redacted
        return redacted

    def remember_secret(self, value: Any) -> None:
        """What was typed into a password field: the same text typed anywhere later is hidden as well
        (`rote.privacy.secrets`)."""
        if isinstance(value, str) and value not in MARKERS and self._secrets.remember(value):
            # the memos may hold it as clean text seen before
            self._clean.discard(value)
            self._dirty.pop(value, None)
            self._ctx_memo.clear()

    def _remember_in_context(self, context: frozenset[str], text: str, redacted: str) -> None:
        if len(self._ctx_memo) >= _MAX_CACHE_ENTRIES:
            self._ctx_memo.clear()
        self._ctx_memo[(context, text)] = redacted

    def _text_or_unchanged(self, value: Any, context: frozenset[str] = frozenset()) -> Any:
        """The redacted string, or `_UNCHANGED`; numbers are read as text (an unvalidated payload may carry
        a card number as a JSON number, and it would reach a dead letter as it is)."""
        if isinstance(value, str):
            new = self.redact_text(value, context)
            return _UNCHANGED if new is value else new
        if isinstance(value, int | float) and not isinstance(value, bool):
            text = str(value)
            new = self.redact_text(text, context)
            return _UNCHANGED if new is text else new
        return _UNCHANGED

    # --------------------------------------------------------------------------------------------------
    # policy: deny / allow lists
    # --------------------------------------------------------------------------------------------------

    def policy(self, app: str | None, url: str | None) -> str:
        """'deny' (keep no values), 'allow' (trusted: no scanning) or 'scan'. Deny wins over allow."""
        if not (self._deny_apps or self._deny_urls or self._allow_apps or self._allow_urls):
            return "scan"
        key = (app, url)
        hit = self._policy_cache.get(key)
        if hit is None:
            if _app_matches(app, self._deny_apps) or _url_matches(url, self._deny_urls):
                hit = "deny"
            elif _app_matches(app, self._allow_apps) or _url_matches(url, self._allow_urls):
                hit = "allow"
            else:
                hit = "scan"
            if len(self._policy_cache) >= 65536:
                self._policy_cache.clear()
            self._policy_cache[key] = hit
        return hit

    # --------------------------------------------------------------------------------------------------
    # the core, on plain values
    # --------------------------------------------------------------------------------------------------

    def _attribute_roles(self, attributes: Mapping[str, Any]) -> _Roles:
        """The attribute keys that say what the field is ('type' or 'label'), cached by key set."""
        keys = tuple(attributes)
        roles = self._roles_cache.get(keys)
        if roles is None:
            found = []
            secret = []
            for k in keys:
                if not isinstance(k, str):
                    continue
                short = _short_key(k)
                if short.endswith("type"):
                    found.append((k, "type"))
                elif short.replace("_", "").replace("-", "") in _LABEL_KEYS:
                    found.append((k, "label"))
                elif "password" in label_kinds(short):
                    secret.append(k)
            if len(self._roles_cache) >= 4096:
                self._roles_cache.clear()
                self._ctx_cache.clear()  # its keys hold the ids of the roles just dropped
            getter = itemgetter(*(k for k, _ in found)) if found else None
            roles = self._roles_cache[keys] = _Roles(tuple(found), getter, tuple(secret))
        return roles

    def _context(
        self, element_type: Any, field: Any, element: Any, attributes: Mapping[str, Any] | None
    ) -> frozenset[str]:
        """What the field says it holds (password/phone/ssn/card), from its type, label, name and id;
        cached, since the same few fields are typed into again and again."""
        roles = self._attribute_roles(attributes) if attributes else _NO_ROLES
        getter = roles.getter
        full_key = (
            (element_type, field, element)
            if getter is None
            else (id(roles), element_type, field, element, getter(attributes))
        )
        key: tuple[Any, ...] | None = full_key
        try:
            ctx = self._ctx_cache.get(full_key)
        except TypeError:  # an unvalidated payload's attribute holds a list or a dict: not cached
            key, ctx = None, None
        if ctx is None:
            kinds: set[str] = set()
            if isinstance(element_type, str) and is_password_type(element_type):
                kinds.add("password")
            for label in (field, element):
                if isinstance(label, str) and label:
                    kinds |= label_kinds(label)
            for k, role in roles.items:
                v = attributes[k] if attributes else None
                if isinstance(v, str) and v:
                    if role == "type":
                        if is_password_type(v):
                            kinds.add("password")
                    else:
                        kinds |= label_kinds(v)
            ctx = frozenset(kinds)
            if key is not None:
                if len(self._ctx_cache) >= 65536:
                    self._ctx_cache.clear()
                self._ctx_cache[key] = ctx
        return ctx

    def _action_context(self, action_type: Any) -> frozenset[str]:
        """Process-mining logs flatten the field into the action ("insertValue_password_Web")."""
        if not isinstance(action_type, str):
            return frozenset()
        ctx = self._action_ctx_cache.get(action_type)
        if ctx is None:
            ctx = label_kinds(action_type) & {"password"}
            if len(self._action_ctx_cache) >= 65536:
                self._action_ctx_cache.clear()
            self._action_ctx_cache[action_type] = ctx
        return ctx

    def _extra_context(self, extra: Mapping[str, Any] | None) -> frozenset[str]:
        """Context from a raw row's own columns (a logger row that did not map to a UserAction)."""
        if not extra:
            return frozenset()
        return self._context(None, None, None, {k: v for k, v in extra.items() if isinstance(v, str)})

    def _redact_parts(
        self,
        app: Any,
        action_type: Any,
        value: Any,
        target_get: Any,
        attributes: Mapping[str, Any] | None,
        extra: Mapping[str, Any] | None = None,
    ) -> tuple[Any, dict[str, Any], Any, dict[str, Any]]:
        """Changes for (value, target fields, attributes, extra top-level keys); `_UNCHANGED` where none."""
        url = target_get("url")
        policy = self.policy(app if isinstance(app, str) else None, url if isinstance(url, str) else None)
        ctx = (
            self._context(target_get("element_type"), target_get("field"), target_get("element"), attributes)
            | self._extra_context(extra)
            | self._action_context(action_type)
        )
        password = "password" in ctx and "password" in self.classes
        value_new: Any = _UNCHANGED
        target_changes: dict[str, Any] = {}
        attrs_new: Any = _UNCHANGED
        extra_changes: dict[str, Any] = {}

        if policy == "deny":
            if value is not None:
                value_new = None
            if attributes:
                attrs_new = {}
            if target_get("title") is not None:
                target_changes["title"] = None
            if isinstance(url, str):
                parts = urlsplit(url)
                if parts.query or parts.fragment:
                    target_changes["url"] = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
            for k, v in (extra or {}).items():
                if v is not None:
                    extra_changes[k] = None
            password = False  # nothing left to hide
        elif password:
            if value is not None and value not in MARKERS:
                value_new = PASSWORD_MARKER
                self.remember_secret(value)
            attrs_new = self._password_attributes(value, attributes)
            extra_changes = self._password_attributes(value, extra, as_changes=True)
        if attributes and policy != "deny" and "password" in self.classes:
            # an attribute named as a password field holds one, whatever the action's own field
            named = self._attribute_roles(attributes).secret
            base = attributes if attrs_new is _UNCHANGED else attrs_new
            hidden = {k: PASSWORD_MARKER for k in named if base.get(k) not in (None, "", *MARKERS)}
            if hidden:
                attrs_new = {**base, **hidden}

        if policy != "scan" or not self.text_classes:
            return value_new, target_changes, attrs_new, extra_changes

        if value_new is _UNCHANGED:
            value_new = self._text_or_unchanged(value, ctx - {"password"})
        for name in _TARGET_GET_FIELDS:
            current = target_changes.get(name, target_get(name))
            if isinstance(current, str):
                new = self.redact_text(current)
                if new is not current:
                    target_changes[name] = new
        base_attrs = attributes if attrs_new is _UNCHANGED else attrs_new
        if base_attrs:
            changed: dict[str, Any] | None = None
            for k, v in base_attrs.items():
                new_v = self._text_or_unchanged(v)
                if new_v is not _UNCHANGED:
                    if changed is None:
                        changed = dict(base_attrs)
                    changed[k] = new_v
            if changed is not None:
                attrs_new = changed
        for k, v in (extra or {}).items():
            current = extra_changes.get(k, v)
            new_v = self._scrub(current)
            if new_v is not _UNCHANGED:
                extra_changes[k] = new_v
        return value_new, target_changes, attrs_new, extra_changes

    def _password_attributes(
        self, value: Any, mapping: Mapping[str, Any] | None, *, as_changes: bool = False
    ) -> Any:
        """In a password field's action, the attributes that carry the typed text (or contain it) become the
        marker; returns the new mapping (or, `as_changes`, only the changed keys)."""
        if not mapping:
            return {} if as_changes else _UNCHANGED
        secret = str(value) if value is not None and str(value) not in MARKERS else None
        changes: dict[str, Any] = {}
        for k, v in mapping.items():
            if v is None or v == "" or (isinstance(v, str) and v in MARKERS):
                continue
            if isinstance(k, str) and _short_key(k) in _CONTENT_KEYS:
                changes[k] = PASSWORD_MARKER
            elif secret and isinstance(v, str) and secret in v:
                changes[k] = v.replace(secret, PASSWORD_MARKER)
        if as_changes:
            return changes
        if not changes:
            return _UNCHANGED
        return {**mapping, **changes}

    def _password_fields(self, obj: Mapping[Any, Any]) -> dict[str, str]:
        """In a nested object of an unknown shape (a foreign record, a rejected event's extra keys), the
        same rule as on an action: a label or type saying password makes its content keys the marker, and
        a key named as a password field is one (`{"el": {"label": "Password", "value": "…"}}`)."""
        if "password" not in self.classes:
            return {}
        texts = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, str) and v}
        if not texts:
            return {}
        roles = self._attribute_roles(texts)
        hidden = {k: PASSWORD_MARKER for k in roles.secret if texts[k] not in MARKERS}
        # the field may be described one level down (`{"el": {"label": "Password"}, "value": …}`)
        around = dict(texts)
        for k, v in obj.items():
            if isinstance(k, str) and isinstance(v, dict):
                around.update(
                    {f"{k}.{k2}": v2 for k2, v2 in v.items() if isinstance(k2, str) and isinstance(v2, str)}
                )
        if "password" in self._context(None, None, None, around):
            hidden.update(self._password_attributes(None, texts, as_changes=True))
        return hidden

    def _scrub(self, obj: Any, depth: int = 0) -> Any:
        """Redacted copy of an arbitrary JSON value (unknown payload keys), or `_UNCHANGED`.

        A structure nested deeper than `_MAX_SCRUB_DEPTH` is replaced whole by `<nested>`: no user action
        nests like that, scanning it would exhaust the stack (a JSON line nested ~900 deep parses, then made
        the importer crash with RecursionError), and what cannot be scanned is not kept."""
        if depth > _MAX_SCRUB_DEPTH and isinstance(obj, dict | list):
            return _NESTED
        if isinstance(obj, dict):
            out: dict[Any, Any] | None = None
            hidden = self._password_fields(obj)
            for k, v in obj.items():
                new = hidden[k] if k in hidden else self._scrub(v, depth + 1)
                if new is not _UNCHANGED:
                    if out is None:
                        out = dict(obj)
                    out[k] = new
            return _UNCHANGED if out is None else out
        if isinstance(obj, list):
            items = [self._scrub(v, depth + 1) for v in obj]
            if all(v is _UNCHANGED for v in items):
                return _UNCHANGED
            return [obj[i] if v is _UNCHANGED else v for i, v in enumerate(items)]
        return self._text_or_unchanged(obj)

    # --------------------------------------------------------------------------------------------------
    # dict payloads (importers, producer API)
    # --------------------------------------------------------------------------------------------------

    def redact_payload(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """A redacted copy of an unvalidated UserAction-shaped dict (the input is not modified).

        Keys UserAction does not know (raw logger columns of a row that failed to map, extra fields of a
        JSON line) are scrubbed too, with the row's own type and label columns as the field context.
        """
        out = dict(payload)
        if not self.enabled:
            return out
        target = payload.get("target")
        tdict: Mapping[str, Any] = target if isinstance(target, Mapping) else _loose_target(target)
        attributes = payload.get("attributes")
        attrs: Mapping[str, Any] | None = attributes if isinstance(attributes, Mapping) else None
        known = {"value", *_STRUCTURAL_KEYS, *_IDENTITY_KEYS}
        # a target or attributes that is not an object is scrubbed like any unknown key
        known |= {k for k, v in (("target", target), ("attributes", attributes)) if isinstance(v, Mapping)}
        extra = {k: v for k, v in payload.items() if k not in known}
        value_new, target_changes, attrs_new, extra_changes = self._redact_parts(
            payload.get("app"), payload.get("action_type"), payload.get("value"), tdict.get, attrs, extra
        )
        if value_new is not _UNCHANGED:
            out["value"] = value_new
        if target_changes and isinstance(target, Mapping):
            out["target"] = {**target, **target_changes}
        if attrs_new is not _UNCHANGED:
            out["attributes"] = attrs_new
        out.update(extra_changes)
        if self.text_classes:
            for k in _IDENTITY_KEYS:
                new = self._text_or_unchanged(payload.get(k))
                if new is not _UNCHANGED:
                    out[k] = new
        return out

    # --------------------------------------------------------------------------------------------------
    # objects (the worker's hot path)
    # --------------------------------------------------------------------------------------------------

    def redact_action(self, action: T) -> T:
        """`action` itself when nothing needs redacting, else a replaced copy (never mutated).

        Works on any object with UserAction's attribute names: `value`, `target` (with `field`,
        `element`, `element_type`, `workbook`, `sheet`, `cell`, `column`, `row`, `url`, `file`, `title`),
        `attributes` (a str -> str mapping), `app`, `user_id` and optionally `session_id` and `device`.

        The common case (an ordinary field, strings seen before) costs a few C-level set operations: the
        attributes are read with one attrgetter call per object, and each string is checked against the
        memo of strings already scanned.
        """
        if not self.enabled:
            return action
        getters = self._getters.get(type(action))
        if getters is None:
            getters = self._getters[type(action)] = _getters_for(action)
        get_action, get_target, get_ids, id_names = getters
        try:
            _app, action_type, value, target, attributes, user_id = get_action(action)
            tvals = get_target(target) if target is not None else _NO_TARGET
            ids = (user_id, *get_ids(action)) if get_ids is not None else (user_id,)
        except AttributeError:  # not all of UserAction's attributes: the general path copes
            return self._redact_action_general(action)
        # tvals: field, element, workbook, sheet, url, file, title, element_type
        ctx = None if attributes else self._ctx_cache.get((tvals[7], tvals[0], tvals[1]))
        if ctx is None:
            ctx = self._context(tvals[7], tvals[0], tvals[1], attributes)
        if (
            self._has_lists
            or "password" in ctx
            or self._action_context(action_type)
            or (attributes and self._attribute_roles(attributes).secret)
        ):
            return self._redact_action_general(action)
        clean = self._clean
        if (
            not ctx
            and value in clean
            and user_id in clean
            and clean.issuperset(tvals)
            and (not attributes or clean.issuperset(attributes.values()))
            and (get_ids is None or clean.issuperset(ids))
        ):
            return action
        redact = self._text_or_unchanged
        changes: dict[str, Any] = {}
        new = redact(value, ctx)
        if new is not _UNCHANGED:
            changes["value"] = new
        if not clean.issuperset(tvals):
            tchanges = {}
            for name, v in zip(_TARGET_GET_FIELDS, tvals, strict=True):
                new = redact(v)
                if new is not _UNCHANGED:
                    tchanges[name] = new
            if tchanges:
                changes["target"] = replace_fields(target, tchanges)
        if attributes and not clean.issuperset(attributes.values()):
            changed = None
            for k, v in attributes.items():
                new = redact(v)
                if new is not _UNCHANGED:
                    if changed is None:
                        changed = dict(attributes)
                    changed[k] = new
            if changed is not None:
                changes["attributes"] = changed
        for name, v in zip(id_names, ids, strict=True):
            new = redact(v)
            if new is not _UNCHANGED:
                changes[name] = new
        return replace_fields(action, changes) if changes else action

    def _redact_action_general(self, action: T) -> T:
        """Password fields, allow/deny lists and objects missing some attributes."""
        target = getattr(action, "target", None)

        def target_get(name: str) -> Any:
            return getattr(target, name, None) if target is not None else None

        attributes = getattr(action, "attributes", None)
        value_new, target_changes, attrs_new, _ = self._redact_parts(
            getattr(action, "app", None),
            getattr(action, "action_type", None),
            getattr(action, "value", None),
            target_get,
            attributes,
        )
        changes: dict[str, Any] = {}
        if value_new is not _UNCHANGED:
            changes["value"] = value_new
        if target_changes and target is not None:
            changes["target"] = replace_fields(target, target_changes)
        if attrs_new is not _UNCHANGED:
            changes["attributes"] = attrs_new
        if self.text_classes:
            for k in _IDENTITY_KEYS:
                current = getattr(action, k, None)
                if isinstance(current, str):
                    new = self.redact_text(current)
                    if new is not current:
                        changes[k] = new
        return replace_fields(action, changes) if changes else action


def _loose_target(target: Any) -> Mapping[str, Any]:
    """What an invalid event's target that is not an object says about where it was typed: a string
    (`"target": "Password"`) or a list of strings names the field. The event is dead-lettered, not
    processed, but its value is still what was typed into that field, so the field's rule applies."""
    if isinstance(target, str):
        return {"field": target}
    if isinstance(target, list | tuple):
        texts = [t for t in target[:16] if isinstance(t, str)]
        return {"field": " ".join(texts)} if texts else {}
    return {}


def _getters_for(action: Any) -> tuple[Any, Any, Any, tuple[str, ...]]:
    """Readers for one action class, one C call each instead of a dozen getattr.

    (app, action_type, value, target, attributes, user_id); the target's text fields plus element_type;
    the optional identity fields the class has (session_id, device) as a tuple, or None; and the names of
    all identity fields read.
    """
    optional = tuple(k for k in _IDENTITY_KEYS[1:] if hasattr(action, k))
    get_ids: Any = None
    if len(optional) > 1:
        get_ids = attrgetter(*optional)
    elif optional:
        one = attrgetter(optional[0])
        get_ids = lambda a: (one(a),)  # noqa: E731
    get_action = attrgetter("app", "action_type", "value", "target", "attributes", "user_id")
    return get_action, attrgetter(*_TARGET_GET_FIELDS), get_ids, ("user_id", *optional)


def replace_fields(obj: T, changes: dict[str, Any]) -> T:
    """A copy of `obj` with `changes`: msgspec Structs, pydantic models and dataclasses."""
    target: Any = obj
    if hasattr(type(target), "__struct_fields__"):
        import msgspec

        return msgspec.structs.replace(target, **changes)
    model_copy = getattr(target, "model_copy", None)
    if model_copy is not None:
        return model_copy(update=changes)
    if dataclasses.is_dataclass(target) and not isinstance(target, type):
        return dataclasses.replace(target, **changes)  # type: ignore[return-value]
    raise TypeError(f"cannot make a changed copy of a {type(obj).__name__}")


@lru_cache(maxsize=4096)
def _app_matches_one(app: str, pattern: str) -> bool:
    return fnmatchcase(app.lower(), pattern.lower())


def _app_matches(app: str | None, patterns: tuple[str, ...]) -> bool:
    return app is not None and any(_app_matches_one(app, p) for p in patterns)


def _url_matches(url: str | None, patterns: tuple[str, ...]) -> bool:
    """Host entries match the host and its subdomains; entries with '/' are URL prefixes; '*' globs."""
    if not url or not patterns:
        return False
    low = url.lower()
    host = (urlsplit(low).hostname or "") if "://" in low else low.split("/", 1)[0]
    for p in patterns:
        pat = p.lower()
        if "*" in pat or "?" in pat:
            if fnmatchcase(low, pat) or fnmatchcase(host, pat):
                return True
        elif "/" in pat:
            if low.startswith(pat):
                return True
        elif host == pat or host.endswith("." + pat):
            return True
    return False
