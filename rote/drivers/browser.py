"""The browser driver: the action API on a real Chromium, through Playwright (Python, sync API).

One `Browser` is launched per run host (the system Chromium, `/usr/bin/chromium` by default: Playwright's
own browser download is not used) and every run gets a fresh `BrowserContext` (no cookies, storage or
cache shared between runs). The driver:

- keeps the recorded URLs and maps them through a `SiteMap` to where the site is served now;
- goes to a step's page only when the browser is not on that site yet (the person was there); once on
  the site, a step recorded on another page *waits* for the application to get there (after a submit,
  the thank-you page) and fails if it does not, so a rejected submission is never papered over by
  navigating past it;
- resolves the element from what the logger recorded (`rote.drivers.targets.selectors`), waiting for
  late elements until the step timeout, and raises `ActionError` naming the target, the page and every
  strategy it tried when the page differs from the recording;
- enforces the network allow-list inside the browser: every request whose host:port is not allowed is
  aborted (Playwright request routing), and Chromium resolves no other host name
  (`--host-resolver-rules`), so a page cannot pull in third-party hosts either.

Operations: click (submit buttons and links wait for the navigation they cause and check its HTTP
status), paste (inserts the clipboard at the focused field, as Ctrl+V does), fill_field (type into text
fields; tick/untick boxes; choose an option of a select by value or label), open_url (navigate), wait_for
(an element, or a page), copy (the shared clipboard).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rote.drivers.targets import (
    Selector,
    SiteMap,
    describe,
    host_port,
    kind_of,
    same_page,
    same_site,
    selectors,
)
from rote.generator.runtime import ActionError, Unsupported

CHROMIUM = "/usr/bin/chromium"
#: Launch flags: headless, no GPU, and no background traffic of Chromium's own (updates, sync, QUIC
#: probes, first-run pings), which would otherwise hammer a closed network. --no-sandbox because the run
#: host may run where Chromium's own sandbox cannot set up its namespaces (see docs/automation.md).
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-crash-reporter",
)
TRUE_WORDS = frozenset({"1", "true", "yes", "y", "on", "checked", "x"})


def resolver_rules(allowed: Iterable[tuple[str, int]]) -> str:
    """Chromium host-resolver rules: every name resolves to nothing except the allowed hosts."""
    names = sorted({h for h, _ in allowed})
    return ", ".join(["MAP * ~NOTFOUND", *(f"EXCLUDE {h}" for h in names)])


class BrowserDriver:
    """The action API's web operations on Chromium. Not thread-safe (Playwright's sync API)."""

    def __init__(
        self,
        *,
        sites: SiteMap | None = None,
        allowed: Iterable[tuple[str, int]] | None = None,
        step_timeout: float = 10.0,
        clipboard: list[str] | None = None,
        executable: str = CHROMIUM,
        profile_root: Path | None = None,
    ) -> None:
        self.sites = sites or SiteMap()
        self.allowed = set(allowed) if allowed is not None else None
        self.step_timeout = step_timeout
        self.clipboard = clipboard if clipboard is not None else [""]
        self.executable = executable
        self.profile_root = profile_root
        self.blocked: list[str] = []
        self._pw: Any = None
        self._browser: Any = None
        self._context: Any = None
        self._page: Any = None

    # ----------------------------------------------------------------------------------------------
    # lifetime: one browser per host, one context per run
    # ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._browser is not None:
            return
        if not os.access(self.executable, os.X_OK):
            raise ActionError(f"no Chromium at {self.executable} (Debian package `chromium`)")
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright

        args = list(CHROMIUM_ARGS)
        if self.allowed is not None:
            args.append(f"--host-resolver-rules={resolver_rules(self.allowed)}")
        if self.profile_root is not None:
            # Playwright makes a fresh --user-data-dir per launch under the temp dir: keep it in ours.
            os.environ["TMPDIR"] = str(self.profile_root)
            tempfile.tempdir = None
        self._pw = sync_playwright().start()
        try:
            self._browser = self._pw.chromium.launch(
                executable_path=self.executable, args=args, headless=True, timeout=60_000
            )
        except PlaywrightError as exc:
            self._pw.stop()
            self._pw = None
            raise ActionError(f"Chromium did not start: {str(exc).splitlines()[0]}") from None

    def begin_run(self) -> None:
        """A fresh context and page for one run."""
        self.start()
        self.end_run()
        self.blocked = []
        self._context = self._browser.new_context(ignore_https_errors=False, service_workers="block")
        self._context.set_default_timeout(self.step_timeout * 1000)
        self._context.set_default_navigation_timeout(self.step_timeout * 1000)
        if self.allowed is not None:
            self._context.route("**/*", self._route)
        self._page = self._context.new_page()

    def end_run(self) -> None:
        if self._context is not None:
            try:
                self._context.close()
            except Exception:  # a crashed browser: the next begin_run starts from scratch
                self._context = None
                self._restart()
            self._context = None
            self._page = None

    def close(self) -> None:
        self.end_run()
        if self._browser is not None:
            with contextlib.suppress(Exception):
                self._browser.close()
            self._browser = None
        if self._pw is not None:
            self._pw.stop()
            self._pw = None

    def _restart(self) -> None:
        browser, pw = self._browser, self._pw
        self._browser = self._pw = None
        for closer in (getattr(browser, "close", None), getattr(pw, "stop", None)):
            if closer is not None:
                with contextlib.suppress(Exception):
                    closer()

    def _route(self, route: Any) -> None:
        url = route.request.url
        scheme = urlsplit(url).scheme
        if scheme in ("data", "blob", "about"):
            route.continue_()
            return
        try:
            hp = host_port(url)
        except ValueError:
            hp = None
        if hp is not None and self.allowed is not None and hp in self.allowed:
            route.continue_()
            return
        self.blocked.append(f"{hp[0]}:{hp[1]}" if hp else url[:100])
        route.abort("blockedbyclient")

    @property
    def started(self) -> bool:
        return self._browser is not None

    @property
    def page(self) -> Any:
        if self._page is None:
            self.begin_run()
        return self._page

    # ----------------------------------------------------------------------------------------------
    # the adapter contract
    # ----------------------------------------------------------------------------------------------

    def perform(self, op: str, target: Mapping[str, str], value: str | None) -> str | None:
        if op == "copy":
            self.clipboard[0] = value or ""
            return value
        if op not in ("click", "paste", "fill_field", "open_url", "wait_for"):
            raise Unsupported(op)
        url = target.get("url")
        if not url and not (target.get("field") or target.get("element") or target.get("title")):
            raise Unsupported(f"{op} without a page or an element")
        from playwright.sync_api import Error as PlaywrightError

        try:
            return self._perform(op, target, value)
        except PlaywrightError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ActionError(f"{op} {describe(target)}: {first}") from None

    def _perform(self, op: str, target: Mapping[str, str], value: str | None) -> str | None:
        url = target.get("url")
        wanted = self.sites.map(url) if url else None
        if op == "open_url":
            if not wanted:
                raise ActionError("open_url needs a URL")
            self._goto(wanted)
            return None
        if wanted:
            self._be_on(wanted)
        if op == "wait_for" and not (target.get("field") or target.get("element") or target.get("title")):
            return None  # waiting for the page: _be_on did it
        loc = self._resolve(target)
        kind = kind_of(target)
        if op == "wait_for":
            return None
        if op == "click":
            if kind in ("submit", "link"):
                self._click_navigating(loc, target)
            else:
                loc.click()
            return None
        if op == "paste":
            text = self.clipboard[0]
            loc.focus()
            self.page.keyboard.insert_text(text)
            return text
        # fill_field
        text = value or ""
        tag, typ = loc.evaluate("e => [e.tagName.toLowerCase(), (e.type || '').toLowerCase()]")
        if typ in ("checkbox", "radio"):
            loc.set_checked(text.strip().lower() in TRUE_WORDS)
        elif tag == "select":
            try:
                loc.select_option(value=text, timeout=1000)
            except Exception:
                loc.select_option(label=text)
        else:
            loc.fill(text)
        return text

    # ----------------------------------------------------------------------------------------------
    # pages and elements
    # ----------------------------------------------------------------------------------------------

    def _goto(self, url: str) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            # a recorded `data:` page runs script of its own; `chrome://` pages are the browser's
            raise ActionError(f"refusing to open {url[:60]!r}: only http(s) pages are opened")
        page = self.page
        try:
            response = page.goto(url, wait_until="load")
        except Exception as exc:
            host = urlsplit(url).netloc
            if self.blocked:
                raise ActionError(
                    f"{host} is not on the automation's network allow-list (a page on this machine is "
                    f"opened only through the runner's --site mapping)"
                ) from None
            raise ActionError(f"cannot open {url}: {str(exc).splitlines()[0]}") from None
        if response is not None and response.status >= 400:
            raise ActionError(f"{url} answered HTTP {response.status}")

    def _be_on(self, wanted: str) -> None:
        """Go to the step's page if the browser is not on its site yet; otherwise wait to be there."""
        page = self.page
        if not same_site(page.url, wanted):
            self._goto(wanted)
            return
        if same_page(page.url, wanted):
            return
        deadline = time.monotonic() + self.step_timeout
        while time.monotonic() < deadline:
            page.wait_for_timeout(25)
            if same_page(page.url, wanted):
                page.wait_for_load_state("load")
                return
        raise ActionError(
            f"the step was recorded on {urlsplit(wanted).path or '/'} but the application stayed on "
            f"{urlsplit(page.url).path or '/'}{self._page_message()}"
        )

    def _page_message(self) -> str:
        """What the page says when it is not where the step expects (a form's error, say)."""
        try:
            text = self.page.evaluate(
                "() => Array.from(document.querySelectorAll('[role=alert], .error, .errorMessage'))"
                ".map(e => e.innerText.trim()).filter(Boolean).join('; ')"
            )
        except Exception:
            return ""
        return f" (the page says: {str(text)[:200]})" if text else ""

    def _locator(self, sel: Selector) -> Any:
        page = self.page
        if sel.how == "css":
            return page.locator(sel.query)
        if sel.how == "label":
            return page.get_by_label(sel.query, exact=True)
        if sel.how == "role":
            return page.get_by_role(sel.role, name=sel.query, exact=True)
        return page.get_by_text(sel.query, exact=True)

    def _resolve(self, target: Mapping[str, str]) -> Any:
        """The one element the recording points at, waiting for it up to the step timeout."""
        strategies = selectors(target)
        if not strategies:
            raise ActionError(f"nothing recorded to find the element by ({describe(target)})")
        deadline = time.monotonic() + self.step_timeout
        ambiguous: dict[str, int] = {}
        while True:
            for sel in strategies:
                loc = self._locator(sel)
                n = loc.count()
                if n == 1:
                    return loc
                if n > 1:
                    visible = loc.locator("visible=true")
                    if visible.count() == 1:
                        return visible
                    ambiguous[sel.why] = n
            if time.monotonic() >= deadline:
                break
            self.page.wait_for_timeout(25)
        tried = ", ".join(s.why for s in strategies)
        where = urlsplit(self.page.url).path or self.page.url
        if ambiguous:
            many = "; ".join(f"{why} matches {n}" for why, n in ambiguous.items())
            raise ActionError(f"{describe(target)} is ambiguous on {where}: {many}")
        raise ActionError(
            f"no element on {where} matches {describe(target)} after {self.step_timeout:g} s (tried {tried})"
        )

    def _click_navigating(self, loc: Any, target: Mapping[str, str]) -> None:
        """Click a submit button or a link and wait for the page it leads to; an HTTP error is a failure."""
        page = self.page
        before = page.url
        try:
            with page.expect_navigation(wait_until="load") as nav:
                loc.click()
        except Exception as exc:
            if "Timeout" not in type(exc).__name__ and "Timeout" not in str(exc):
                raise
            raise ActionError(
                f"clicking {describe(target)} led nowhere within {self.step_timeout:g} s "
                f"(still on {urlsplit(before).path}){self._page_message()}"
            ) from None
        response = nav.value
        if response is not None and response.status >= 400:
            raise ActionError(
                f"clicking {describe(target)}: the application answered HTTP {response.status}"
                f"{self._page_message()}"
            )
