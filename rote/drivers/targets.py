"""From what a logger recorded about an element to ways of finding it again on a live page; where sites live.

Pure logic, no browser: tested directly, used by the browser driver.

A recorded target (`rote.streams.schemas.Target` fields as the plan carries them) says what the person
acted on: `field` (the element's name attribute, or a form label for loggers that record labels),
`element` (its id), `element_type` (the input type, or the tag name when there is no type), `title`
(its title, or its inner text: "Submit", "Add another response.") and `url` (the page it was on).
`selectors(target)` turns that into an ordered list of locator strategies, most specific first; the
browser driver takes the first that matches exactly one element, waiting for late elements, and names
every strategy it tried when none does.

`SiteMap` says where a recorded site is served now (`https://forms.zoho.com` -> `http://127.0.0.1:8123`
for the demo's local replica, or a staging copy): the automation keeps its recorded URLs, the executor
binds them to a place, and the network allow-list is computed from the mapped places.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from rote.errors import ConfigError

#: `element_type` values that mean "a button that submits its form".
SUBMIT_TYPES = frozenset({"submit"})
#: ... "a link" (the Action Logger records the tag name "A" when an element has no type).
LINK_TYPES = frozenset({"a", "link"})
#: ... a button that is not a submit button.
BUTTON_TYPES = frozenset({"button", "reset"})
#: ... a box that is ticked rather than typed into.
TOGGLE_TYPES = frozenset({"checkbox", "radio"})
#: ... a drop-down.
SELECT_TYPES = frozenset({"select", "select-one", "select-multiple"})
#: Input types a person types text into (a recorded "text" may be served as tel/date/email now).
TEXT_TYPES = frozenset(
    {"text", "input", "email", "tel", "number", "date", "password", "search", "url", "textarea", "time"}
)


def kind_of(target: Mapping[str, str]) -> str:
    """submit | link | button | toggle | select | text | other, from the recorded element type."""
    t = (target.get("element_type") or "").strip().lower()
    if t in SUBMIT_TYPES:
        return "submit"
    if t in LINK_TYPES:
        return "link"
    if t in BUTTON_TYPES:
        return "button"
    if t in TOGGLE_TYPES:
        return "toggle"
    if t in SELECT_TYPES:
        return "select"
    if t in TEXT_TYPES:
        return "text"
    return "other"


def css_string(value: str) -> str:
    """A CSS string literal for an attribute selector: `"` and `\\` escaped, control characters as
    code points, so a recorded name can never change the selector's structure."""
    out = []
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):x} ")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


@dataclass(frozen=True, kw_only=True)
class Selector:
    """One way to find the element: `how` is css | role | label | text; `why` says which recording it uses."""

    how: str
    query: str
    why: str
    role: str | None = None

    def describe(self) -> str:
        return self.why


def selectors(target: Mapping[str, str]) -> list[Selector]:
    """Locator strategies for a recorded target, most specific first (see the module docstring).

    id and name together beat either alone; the name attribute beats the id (loggers record names more
    faithfully, and a redesigned page keeps field names for the server); labels, aria-labels and
    placeholders cover loggers that record what a person reads; the inner text or title finds buttons and
    links; the element type alone is the last resort (one submit button on the page).
    """
    name = (target.get("field") or "").strip()
    elem_id = (target.get("element") or "").strip()
    title = " ".join((target.get("title") or "").split())
    kind = kind_of(target)
    if not title and kind in ("link", "submit", "button"):
        title = " ".join(elem_id.split())  # loggers that record a button's or link's text as its identity
    out: list[Selector] = []
    if name and elem_id:
        out.append(
            Selector(
                how="css",
                query=f"[id={css_string(elem_id)}][name={css_string(name)}]",
                why=f"id={elem_id!r} and name={name!r}",
            )
        )
    if name:
        out.append(Selector(how="css", query=f"[name={css_string(name)}]", why=f"name={name!r}"))
    if elem_id:
        out.append(Selector(how="css", query=f"[id={css_string(elem_id)}]", why=f"id={elem_id!r}"))
    if name:
        out.append(Selector(how="label", query=name, why=f"label {name!r}"))
        out.append(Selector(how="css", query=f"[aria-label={css_string(name)}]", why=f"aria-label={name!r}"))
        out.append(
            Selector(how="css", query=f"[placeholder={css_string(name)}]", why=f"placeholder={name!r}")
        )
    if title:
        if kind == "link":
            out.append(Selector(how="role", role="link", query=title, why=f"link {title!r}"))
        elif kind in ("submit", "button"):
            out.append(Selector(how="role", role="button", query=title, why=f"button {title!r}"))
        out.append(Selector(how="css", query=f"[title={css_string(title)}]", why=f"title={title!r}"))
        out.append(Selector(how="text", query=title, why=f"text {title!r}"))
    if kind == "submit":
        out.append(
            Selector(how="css", query="button[type=submit], input[type=submit]", why="the submit button")
        )
    return out


def describe(target: Mapping[str, str]) -> str:
    """The recorded target in one line, for error messages (the URL is left out: it is said apart)."""
    keys = ("field", "element", "element_type", "title", "workbook", "sheet", "cell", "file")
    return " ".join(f"{k}={target[k]!r}" for k in keys if target.get(k)) or "(no target recorded)"


# --------------------------------------------------------------------------------------------------
# where recorded sites are served now
# --------------------------------------------------------------------------------------------------


def origin(url: str) -> str:
    """scheme://host[:port] of a URL, lower-cased, default ports dropped."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    host = parts.hostname.lower()
    port = parts.port
    default = 443 if parts.scheme == "https" else 80
    netloc = host if port in (None, default) else f"{host}:{port}"
    if ":" in host:  # IPv6 literal
        netloc = f"[{host}]" if port in (None, default) else f"[{host}]:{port}"
    return f"{parts.scheme}://{netloc}"


#: A DNS host name (after IDNA): labels of letters, digits and inner hyphens. Host names go into
#: Chromium's `--host-resolver-rules`, a comma-separated rule list: a recorded `http://x, EXCLUDE *:80/`
#: once added a rule of its own there (an attacker's sweep).
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_SCHEMES = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def host_port(url: str) -> tuple[str, int]:
    """(host, port) of a web URL; ValueError for another scheme or a host that is not a host name or an
    IP address."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise ValueError(f"no web host in {url[:100]!r}")
    host = parts.hostname.lower()
    if not _is_ip(host):
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            host = ""
        if not _HOST_NAME.fullmatch(host):
            raise ValueError(f"not a host name in {url[:100]!r}")
    return host, parts.port or _SCHEMES[parts.scheme]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def local_host(host: str) -> bool:
    """Loopback, link-local (cloud metadata at 169.254.169.254), unspecified or multicast, or a
    `localhost` name: places on the run host itself, which a recorded URL must not open (a site mapping,
    the operator's choice, may). Private ranges are not: intranet applications live there."""
    host = host.strip("[]").rstrip(".").lower()  # `localhost.` is localhost too
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # `[::ffff:7f00:1]` is 127.0.0.1, `[::ffff:a9fe:a9fe]` the metadata address
    this_network = ip.version == 4 and ip.packed[0] == 0  # 0.0.0.0/8 reaches the host itself
    return ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast or this_network


@dataclass(frozen=True)
class SiteMap:
    """Recorded origin -> origin it is served from now. Unmapped origins stay as recorded."""

    sites: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, specs: Iterable[str]) -> SiteMap:
        """From `RECORDED=NOW` items (`https://forms.zoho.com=http://127.0.0.1:8123`), comma lists allowed."""
        sites: dict[str, str] = {}
        for spec in specs:
            for item in (s.strip() for s in spec.split(",")):
                if not item:
                    continue
                recorded, sep, now = item.partition("=")
                if not sep:
                    raise ConfigError(f"site mapping needs RECORDED=NOW, got {item!r}")
                try:
                    sites[origin(recorded.strip())] = origin(now.strip())
                except ValueError as exc:
                    raise ConfigError(f"site mapping {item!r}: {exc}") from None
        return cls(sites)

    def map(self, url: str) -> str:
        """The URL where the recorded `url` is served now (path, query and fragment kept)."""
        try:
            o = origin(url)
        except ValueError:
            return url
        now = self.sites.get(o)
        if now is None:
            return url
        parts = urlsplit(url)
        new = urlsplit(now)
        return urlunsplit((new.scheme, new.netloc, parts.path, parts.query, parts.fragment))

    def maps(self, url: str) -> bool:
        """Does a mapping (the operator's `--site`) name this URL's origin, even as itself?"""
        try:
            return origin(url) in self.sites
        except ValueError:
            return False

    def to_args(self) -> list[str]:
        return [f"{k}={v}" for k, v in sorted(self.sites.items())]


def same_page(current: str, wanted: str) -> bool:
    """Same origin and path (query and fragment ignored, a trailing slash too)."""
    try:
        if origin(current) != origin(wanted):
            return False
    except ValueError:
        return False
    return urlsplit(current).path.rstrip("/") == urlsplit(wanted).path.rstrip("/")


def same_site(current: str, wanted: str) -> bool:
    try:
        return origin(current) == origin(wanted)
    except ValueError:
        return False


def recorded_urls(plan: Iterable[Mapping[str, object]]) -> list[str]:
    """Every constant URL the plan's steps recorded (a URL computed at run time cannot be listed)."""
    urls: list[str] = []
    for st in plan:
        target = st.get("target")
        if not isinstance(target, Mapping):
            continue
        e = target.get("url")
        if (
            isinstance(e, Mapping)
            and e.get("k") == "const"
            and isinstance(e.get("s"), str)
            and e["s"] not in urls
        ):
            urls.append(str(e["s"]))
    return urls


def allowed_hosts(plan: Iterable[Mapping[str, object]], sites: SiteMap) -> set[tuple[str, int]]:
    """(host, port) pairs the automation may reach: the places its recorded URLs are served from now."""
    out: set[tuple[str, int]] = set()
    for url in recorded_urls(plan):
        now = sites.map(url)
        try:
            host, port = host_port(now)
        except ValueError:
            continue
        if local_host(host) and not sites.maps(url):
            continue  # recorded, not mapped: the run host's own services are not the routine's
        out.add((host, port))
    return out
