"""A local replica of the recorded Zoho web form, served on 127.0.0.1, that checks what it receives.

The replica has what the StudentRecord recording shows of the real form: the same field names, ids,
types and classes (`SingleLine` twice-used for the name, `date` with id `Date-date` and class
`hasDatepicker`, `countrycode` with id `PhoneNumber`, `Email`, `SingleLine1`, the four `Address_*`
fields, the `DecisionBox` checkbox), a Submit button (`button type=submit`, inner text "Submit"), and a
thank-you page at `…/NewRecord/thankyou` with the "Add another response." link back to the form.
Like the real one it is built by JavaScript after the page loads (so a driver must wait for late
elements), its date picker turns a pasted 11/03/1986 into 11-03-1986, its phone field keeps digits in
###-###-#### form, and it validates before submitting. The server validates again (never trusting the
page) and answers 422 with the reason when a submission is malformed.

Every accepted submission is checked against the workbook: it is *correct* when it equals, field for
field, the expected record of one student (`rote.demo.students.expected_submission`). The counts (and,
for incorrect ones, which fields differ, never their values) are what `rote run` reports as `demo_form`.

Test and demo switches: `slow_after`/`slow_seconds` make the server answer slowly after N submissions
(`rote run --inject-slowdown`: real slow runs for the anomaly detector), `rename` serves a field under
another name (a redesigned page).
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rote.demo.students import FORM_FIELDS, Student, expected_submission

FORM_PATH = "/universityofmelbourne/form/NewRecord"
THANKS_PATH = FORM_PATH + "/thankyou"
RECORDED_ORIGIN = "https://forms.zoho.com"
EXPECTED_SUBMISSIONS = 50
MAX_BODY = 64 * 1024

#: (name, id, label, class) of the text fields, in the page's order.
_TEXT_FIELDS = (
    ("SingleLine", "", "Name", ""),
    ("date", "Date-date", "Date of birth", "hasDatepicker"),
    ("countrycode", "PhoneNumber", "Phone", ""),
    ("Email", "", "Email", ""),
    ("SingleLine1", "", "Country", ""),
    ("Address_AddressLine1", "", "Street Address", ""),
    ("Address_City", "", "City", ""),
    ("Address_Region", "", "State/Region/Province", ""),
    ("Address_ZipCode", "", "Postal / Zip Code", ""),
)


@dataclass
class FormStats:
    submitted: int = 0
    correct: int = 0
    rejected: int = 0  # malformed: answered 422, not stored
    correct_rows: set[int] = field(default_factory=set)
    #: incorrect submissions: the closest student's row and the names of the fields that differ
    incorrect: list[dict[str, Any]] = field(default_factory=list)
    decision_box_ticked: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "submitted": self.submitted,
            "correct": self.correct,
            "expected": EXPECTED_SUBMISSIONS,
            "distinct_students_correct": len(self.correct_rows),
            "rejected_malformed": self.rejected,
            "decision_box_ticked": self.decision_box_ticked,
            "incorrect": self.incorrect[:50],
        }


def validate(form: Mapping[str, str]) -> str | None:
    """Why a submission is malformed (the form's own rules), or None."""
    import re

    for name in FORM_FIELDS:
        if not form.get(name, "").strip():
            return f"{name} is required"
    if not re.fullmatch(r"\d{2}-\d{2}-\d{4}", form["date"]):
        return "date must be dd-mm-yyyy"
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", form["Email"]):
        return "Email is not an e-mail address"
    return None


def grade(form: Mapping[str, str], students: list[Student]) -> tuple[int, list[str]]:
    """(row of the closest student, names of the fields that differ from their expected record)."""
    best_row, best_diff = 0, list(FORM_FIELDS)
    for s in students:
        want = expected_submission(s)
        diff = [k for k in FORM_FIELDS if form.get(k, "") != want[k]]
        if len(diff) < len(best_diff):
            best_row, best_diff = s.row, diff
            if not diff:
                break
    return best_row, best_diff


def form_page(rename: Mapping[str, str], error: str | None = None) -> str:
    """The form: an empty shell whose fields JavaScript builds after load, like the Zoho page."""
    fields = []
    for name, elem_id, label, cls in _TEXT_FIELDS:
        shown = rename.get(name, name)
        fid = elem_id or f"f-{shown}"
        fields.append(
            f'<div class="fld"><label for="{html.escape(fid)}">{html.escape(label)}</label>'
            f'<input type="text" name="{html.escape(shown)}" id="{html.escape(fid)}"'
            f'{f" class={chr(34)}{cls}{chr(34)}" if cls else ""} autocomplete="off"></div>'
        )
    box = rename.get("DecisionBox", "DecisionBox")
    fields.append(
        f'<div class="fld"><input type="checkbox" name="{html.escape(box)}" id="{html.escape(box)}" '
        f'value="on"><label for="{html.escape(box)}">DecisionBox</label></div>'
    )
    alert = f'<div role="alert" class="errorMessage">{html.escape(error)}</div>' if error else ""
    template = (
        f'<form method="post" action="{FORM_PATH}" id="NewRecord" novalidate>'
        + "".join(fields)
        + '<div role="alert" class="errorMessage" id="client-error"></div>'
        + '<button type="submit" class="fmSmtButton submitColor"><em>Submit</em></button></form>'
    )
    return _PAGE.format(
        title="New Record", alert=alert, template=json.dumps(template).replace("</", "<\\/"), script=_JS
    )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}} .fld{{margin:.6em 0}}
label{{display:block}} .errorMessage:empty{{display:none}} .errorMessage{{color:#b00}}</style></head>
<body><h1>New Record</h1>{alert}<div id="app">Loading…</div>
<script>const TEMPLATE = {template};</script><script>{script}</script></body></html>
"""

# Builds the form a moment after load (late elements), formats the date and phone like Zoho's widgets,
# and validates before letting the browser submit.
_JS = r"""
function fmtDate(v) {
  const m = v.trim().match(/^(\d{1,2})[\/.\-](\d{1,2})[\/.\-](\d{4})$/);
  return m ? m[1].padStart(2, "0") + "-" + m[2].padStart(2, "0") + "-" + m[3] : v;
}
function fmtPhone(v) {
  let d = v.replace(/\D/g, "");
  if (d.length > 10) d = d.slice(d.length - 10);
  return d.length === 10 ? d.slice(0, 3) + "-" + d.slice(3, 6) + "-" + d.slice(6) : v;
}
setTimeout(function () {
  document.getElementById("app").innerHTML = TEMPLATE;
  const form = document.getElementById("NewRecord");
  const date = form.querySelector(".hasDatepicker");
  if (date) date.addEventListener("change", () => { date.value = fmtDate(date.value); });
  const phone = document.getElementById("PhoneNumber");
  if (phone) phone.addEventListener("change", () => { phone.value = fmtPhone(phone.value); });
  form.addEventListener("submit", function (ev) {
    const missing = Array.from(form.querySelectorAll("input[type=text]")).filter(e => !e.value.trim());
    const err = document.getElementById("client-error");
    if (missing.length) {
      ev.preventDefault();
      err.textContent = "Please fill in " + missing.map(e => e.name).join(", ");
    }
  });
}, 120);
"""

_THANKS = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Thank you</title></head>
<body><h1>Thank you!</h1><p>Your response has been recorded.</p>
<a href="{FORM_PATH}" class="liveAddIcon"><b>Add another response.</b></a></body></html>
"""


class FormServer:
    """The replica on 127.0.0.1 in a thread of its own (the pipeline's event loop never delays it)."""

    def __init__(
        self,
        students: list[Student],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        slow_after: int | None = None,
        slow_seconds: float = 0.0,
        rename: Mapping[str, str] | None = None,
    ) -> None:
        self.students = students
        self.stats = FormStats()
        self.slow_after = slow_after
        self.slow_seconds = slow_seconds
        self.rename = dict(rename or {})
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), self._handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def form_url(self) -> str:
        return self.origin + FORM_PATH

    def site_mapping(self) -> str:
        """`RECORDED=NOW` for the executor's site map."""
        return f"{RECORDED_ORIGIN}={self.origin}"

    def start(self) -> FormServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="demo-form", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FormServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self.stats.to_json()

    def _delay(self) -> None:
        if self.slow_after is not None and self.stats.submitted >= self.slow_after and self.slow_seconds > 0:
            time.sleep(self.slow_seconds)

    def _receive(self, form: dict[str, str]) -> str | None:
        """Validate, store and grade one submission; the reason when it is malformed."""
        # a renamed field arrives under its new name: the server stores what it is sent
        why = validate(form)
        with self._lock:
            if why is not None:
                self.stats.rejected += 1
                return why
            self.stats.submitted += 1
            if form.get("DecisionBox") == "on":
                self.stats.decision_box_ticked += 1
            row, diff = grade(form, self.students)
            if not diff:
                self.stats.correct += 1
                self.stats.correct_rows.add(row)
            else:
                self.stats.incorrect.append({"closest_row": row, "fields_differ": diff})
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "rote-demo-form/1"

            def log_message(self, format: str, *args: Any) -> None:
                return  # submissions carry personal data: nothing is logged

            def _send(self, status: int, body: str, ctype: str = "text/html; charset=utf-8") -> None:
                data = body.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("Cache-Control", "no-store")
                    self.end_headers()
                    self.wfile.write(data)
                except ConnectionError:
                    pass  # the browser closed the page (the run ended) before reading the answer

            def do_GET(self) -> None:
                path = urlsplit(self.path).path.rstrip("/")
                server._delay()
                if path == FORM_PATH:
                    self._send(200, form_page(server.rename))
                elif path == THANKS_PATH:
                    self._send(200, _THANKS)
                elif path == "/favicon.ico":
                    self._send(204, "")
                elif path == "/stats":
                    self._send(200, json.dumps(server.snapshot()), "application/json")
                else:
                    self._send(404, "<h1>Not found</h1>")

            def do_POST(self) -> None:
                path = urlsplit(self.path).path.rstrip("/")
                if path != FORM_PATH:
                    self._send(404, "<h1>Not found</h1>")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._send(413, "<h1>Too large</h1>")
                    return
                raw = self.rfile.read(length).decode("utf-8", "replace")
                form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
                server._delay()
                why = server._receive(form)
                if why is not None:
                    self._send(HTTPStatus.UNPROCESSABLE_ENTITY, form_page(server.rename, error=why))
                    return
                self.send_response(303)
                self.send_header("Location", THANKS_PATH)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler
