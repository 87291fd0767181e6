"""The browser driver on the system Chromium (Playwright), against the demo's form replica and small pages.

Every test drives a real headless Chromium: clicks, paste, typing, ticking, choosing, navigating,
submitting and waiting, with targets resolved from what the Action Logger recorded; the page differing
from the recording is an `ActionError` that names the step and the target.
"""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from rote.demo.form import FORM_PATH, RECORDED_ORIGIN, FormServer
from rote.demo.students import expected_submission, students_from_log
from rote.drivers.browser import CHROMIUM, BrowserDriver, resolver_rules
from rote.drivers.targets import SiteMap
from rote.generator.runtime import ActionError, Api, Unsupported

pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="needs /usr/bin/chromium")

URL = RECORDED_ORIGIN + FORM_PATH


@pytest.fixture(scope="module")
def students() -> list[Any]:
    return students_from_log()


@pytest.fixture(scope="module")
def form(students: list[Any]) -> Iterator[FormServer]:
    with FormServer(students) as server:
        yield server


@pytest.fixture
def browser(form: FormServer) -> Iterator[BrowserDriver]:
    sites = SiteMap.parse([form.site_mapping()])
    d = BrowserDriver(
        sites=sites, allowed={("127.0.0.1", int(form.origin.rsplit(":", 1)[1]))}, step_timeout=4
    )
    d.start()
    d.begin_run()
    yield d
    d.close()


def field(name: str, elem_id: str | None = None) -> dict[str, str]:
    t = {"field": name, "element_type": "text", "url": URL}
    if elem_id:
        t["element"] = elem_id
    return t


def test_fills_and_submits_the_form_like_the_recording(
    browser: BrowserDriver, form: FormServer, students: list[Any]
) -> None:
    s = students[5]
    want = expected_submission(s)
    api = Api(browser)
    before = form.snapshot()["correct"]
    # the recorded sequence for the name: click the field, paste the copied first name, then the edit
    browser.clipboard[0] = s.first
    api.click(2, **field("SingleLine"))  # first action on the site: the driver goes to the page
    assert api.paste(3, **field("SingleLine")) == s.first
    assert browser.page.locator("[name=SingleLine]").input_value() == s.first  # pasted, not typed
    api.fill_field(4, want["SingleLine"], **field("SingleLine"))
    # the date picker turns a pasted 11/03/1986 into 11-03-1986 on change, like Zoho's
    browser.clipboard[0] = s.birth
    api.click(12, **field("date", "Date-date"))
    api.paste(13, **field("date", "Date-date"))
    browser.page.locator("#Date-date").dispatch_event("change")
    assert browser.page.locator("#Date-date").input_value() == want["date"]
    for i, name in enumerate(
        [
            "countrycode",
            "Email",
            "SingleLine1",
            "Address_AddressLine1",
            "Address_City",
            "Address_Region",
            "Address_ZipCode",
        ]
    ):
        api.fill_field(20 + i, want[name], **field(name, "PhoneNumber" if name == "countrycode" else None))
    api.click(44, field="DecisionBox", element="DecisionBox", element_type="checkbox", url=URL)
    api.fill_field(45, "on", field="DecisionBox", element="DecisionBox", element_type="checkbox", url=URL)
    assert browser.page.locator("#DecisionBox").is_checked()
    api.click(46, element_type="submit", title="Submit", url=URL)
    assert browser.page.url.endswith(FORM_PATH + "/thankyou")
    api.click(47, element_type="A", title="Add another response.", url=URL + "/thankyou")
    assert browser.page.url.endswith(FORM_PATH)
    after = form.snapshot()
    assert after["correct"] == before + 1


def test_a_missing_field_names_the_step_and_the_target(browser: BrowserDriver) -> None:
    api = Api(browser)
    with pytest.raises(ActionError) as err:
        api.click(7, **field("FullName"))
    msg = str(err.value)
    assert msg.startswith("step 7 (click ") and "field='FullName'" in msg and "no element on" in msg
    assert "tried name='FullName'" in msg and err.value.step == 7


def test_a_rejected_submission_is_not_papered_over(browser: BrowserDriver, students: list[Any]) -> None:
    """The server answers 422: the submit step fails with the page's reason; the next step never navigates
    past it."""
    api = Api(browser)
    want = expected_submission(students[0])
    for name in want:
        api.fill_field(1, want[name] if name != "date" else "1986/03/11", **field(name))
    with pytest.raises(ActionError, match=r"HTTP 422.*date must be dd-mm-yyyy"):
        api.click(46, element_type="submit", title="Submit", url=URL)


def test_late_elements_are_waited_for_and_hosts_off_the_list_are_blocked(form: FormServer) -> None:
    page_html = (
        b"<!doctype html><title>t</title><body><script>setTimeout(() => {document.body.innerHTML = "
        b"'<label for=c>Colour</label><select id=c name=colour><option value=r>Red</option>"
        b'<option value=g>Green</option></select><img src="http://192.0.2.1/x.png">\'}, 600)</script>'
    )

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page_html)

        def log_message(self, *a: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    d = BrowserDriver(allowed={("127.0.0.1", port)}, step_timeout=5)
    try:
        d.start()
        d.begin_run()
        url = f"http://127.0.0.1:{port}/page"
        d.perform("open_url", {"url": url}, None)
        # the select appears 0.6 s after load; choose by label text through the recorded field label
        assert d.perform("fill_field", {"field": "Colour", "url": url}, "Green") == "Green"
        assert d.page.locator("#c").input_value() == "g"
        d.perform("wait_for", {"field": "colour", "url": url}, None)
        assert any(b.startswith("192.0.2.1") for b in d.blocked)  # the image host is not on the list
        with pytest.raises(ActionError, match="not on the automation's network allow-list"):
            d.perform("open_url", {"url": "http://192.0.2.1/"}, None)
        # a recorded data: page runs script of its own, chrome:// pages are the browser's (attacker's sweep)
        for other in ("data:text/html,<script>fetch('http://127.0.0.1/')</script>", "chrome://version"):
            with pytest.raises(ActionError, match="only http"):
                d.perform("open_url", {"url": other}, None)
        with pytest.raises(Unsupported):
            d.perform("read_cell", {"cell": "A1"}, None)
    finally:
        d.close()
        srv.shutdown()


def test_resolver_rules_resolve_only_allowed_names() -> None:
    assert resolver_rules({("forms.zoho.com", 443), ("127.0.0.1", 80)}) == (
        "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE forms.zoho.com"
    )
