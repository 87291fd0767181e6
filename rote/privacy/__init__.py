"""Privacy: redaction of personal data and secrets in user actions, at capture and again at ingress.

`Redactor(config).redact_payload(dict)` for importers and the producer API, `redact_action(obj)` for the
worker's hot path. Values typed into password fields become `<password>`; e-mail addresses, phone numbers,
payment cards, IBANs, national id numbers and IP/MAC addresses become keyed pseudonyms `<kind:hex>` (the
same value gives the same token within a deployment, so discovery still sees which values are equal);
credentials in text become `<secret>`. See docs/privacy.md.
"""

from rote.privacy.config import CLASSES, RedactionConfig, load_key
from rote.privacy.default import default_redactor, redact_action, redact_bytes, redact_payload
from rote.privacy.redactor import Redactor, replace_fields
from rote.privacy.tokens import PASSWORD_MARKER, SECRET_MARKER, contains_redaction

__all__ = [
    "CLASSES",
    "PASSWORD_MARKER",
    "SECRET_MARKER",
    "RedactionConfig",
    "Redactor",
    "contains_redaction",
    "default_redactor",
    "load_key",
    "redact_action",
    "redact_bytes",
    "redact_payload",
    "replace_fields",
]
