"""Target resolution and site mapping (pure: no browser)."""

from __future__ import annotations

import pytest

from rote.drivers.targets import (
    SiteMap,
    allowed_hosts,
    css_string,
    describe,
    kind_of,
    origin,
    recorded_urls,
    same_page,
    selectors,
)
from rote.errors import ConfigError
from rote.generator import exprs


def test_selectors_most_specific_first_from_action_logger_fields() -> None:
    # what the importer makes of the Action Logger's date field: name, id, type
    sels = selectors({"field": "date", "element": "Date-date", "element_type": "text"})
    assert [s.why for s in sels[:3]] == ["id='Date-date' and name='date'", "name='date'", "id='Date-date'"]
    assert sels[0].query == '[id="Date-date"][name="date"]'
    assert any(s.how == "label" and s.query == "date" for s in sels)


def test_selectors_for_buttons_and_links_use_the_inner_text() -> None:
    submit = selectors({"element_type": "submit", "title": "Submit"})
    assert submit[0].how == "role" and submit[0].role == "button" and submit[0].query == "Submit"
    assert submit[-1].query == "button[type=submit], input[type=submit]"
    link = selectors({"element_type": "A", "title": " Add another\n response. "})
    assert link[0].role == "link"
    # a logger that records the text as the element's identity
    link2 = selectors({"element_type": "link", "element": "Add another response."})
    assert any(s.how == "role" and s.query == "Add another response." for s in link2)


def test_css_string_cannot_break_out_of_the_selector() -> None:
    evil = 'x"] , body, [a="'
    q = selectors({"field": evil})[0].query
    assert q == '[name="x\\"] , body, [a=\\""]'
    assert css_string("a\nb\\") == '"a\\a b\\\\"'


def test_kinds() -> None:
    assert kind_of({"element_type": "SUBMIT"}) == "submit"
    assert kind_of({"element_type": "A"}) == "link"
    assert kind_of({"element_type": "checkbox"}) == "toggle"
    assert kind_of({"element_type": "select-one"}) == "select"
    assert kind_of({"element_type": "tel"}) == "text"
    assert kind_of({}) == "other"
    assert describe({"field": "Email", "url": "https://x"}) == "field='Email'"


def test_site_map_keeps_paths_and_maps_origins() -> None:
    sites = SiteMap.parse(["https://forms.zoho.com=http://127.0.0.1:8123"])
    assert (
        sites.map("https://forms.zoho.com/u/form/NewRecord?x=1#f")
        == "http://127.0.0.1:8123/u/form/NewRecord?x=1#f"
    )
    assert sites.map("https://FORMS.zoho.com:443/a") == "http://127.0.0.1:8123/a"
    assert sites.map("https://other.example/a") == "https://other.example/a"
    assert sites.to_args() == ["https://forms.zoho.com=http://127.0.0.1:8123"]
    with pytest.raises(ConfigError, match="RECORDED=NOW"):
        SiteMap.parse(["https://forms.zoho.com"])
    with pytest.raises(ConfigError, match="not an http"):
        SiteMap.parse(["ftp://x=http://y"])
    assert origin("http://[::1]:80/x") == "http://[::1]"


def test_same_page_ignores_query_and_trailing_slash_not_origin() -> None:
    assert same_page("http://a:1/f/?q=1", "http://a:1/f")
    assert not same_page("http://a:1/f/thankyou", "http://a:1/f")
    assert not same_page("http://a:2/f", "http://a:1/f")
    assert not same_page("about:blank", "http://a:1/f")


def test_allowed_hosts_are_the_mapped_recorded_urls() -> None:
    plan = [
        {"i": 0, "op": "click", "target": {"url": exprs.const("https://forms.zoho.com/f")}},
        {"i": 1, "op": "click", "target": {"url": exprs.const("https://forms.zoho.com/f/thankyou")}},
        {"i": 2, "op": "open_url", "target": {"url": exprs.param("somewhere")}},  # unknown until run time
        {"i": 3, "op": "read_cell", "target": {"cell": exprs.const("A2")}},
    ]
    assert recorded_urls(plan) == ["https://forms.zoho.com/f", "https://forms.zoho.com/f/thankyou"]
    assert allowed_hosts(plan, SiteMap()) == {("forms.zoho.com", 443)}
    mapped = SiteMap.parse(["https://forms.zoho.com=http://127.0.0.1:8123"])
    assert allowed_hosts(plan, mapped) == {("127.0.0.1", 8123)}


def test_recorded_urls_cannot_open_the_run_host_or_rewrite_the_resolver_rules() -> None:
    """An attacker's sweep: recorded URLs are the allow-list, so `http://169.254.169.254/` (cloud
    metadata) and `http://127.0.0.1:8765/` were reachable, and `http://x, EXCLUDE *:80/` put a rule of
    its own into Chromium's comma-separated host-resolver rules."""
    from rote.drivers.browser import resolver_rules
    from rote.drivers.targets import host_port

    urls = [
        "http://169.254.169.254/latest/meta-data",
        "http://127.0.0.1:8765/admin",
        "http://localhost:9000/",
        "http://[::1]:8000/",
        "http://x, EXCLUDE *:80/",
        "https://intranet.example/erp",
        "http://10.1.2.3/erp",  # an intranet application: private ranges are fine
        "https://bücher.example/",
    ]
    plan = [{"i": i, "op": "open_url", "target": {"url": exprs.const(u)}} for i, u in enumerate(urls)]
    allowed = allowed_hosts(plan, SiteMap())
    assert allowed == {("intranet.example", 443), ("10.1.2.3", 80), ("xn--bcher-kva.example", 443)}
    assert resolver_rules(allowed).count(",") == 3  # MAP * ~NOTFOUND and one EXCLUDE per host
    with pytest.raises(ValueError, match="not a host name"):
        host_port("http://x, EXCLUDE *:80/")
    with pytest.raises(ValueError):
        host_port("data:text/html,<script>alert(1)</script>")
    # the operator's own mapping may point at the run host, even mapping an origin to itself
    mapped = SiteMap.parse(["http://127.0.0.1:8765=http://127.0.0.1:9999"])
    assert ("127.0.0.1", 9999) in allowed_hosts(plan, mapped)
    same = SiteMap.parse(["http://localhost:9000=http://localhost:9000"])
    assert ("localhost", 9000) in allowed_hosts(plan, same)
    # other spellings of the run host (a reviewer): a trailing dot, IPv4 inside IPv6, 0.0.0.0/8
    from rote.drivers.targets import local_host

    for host in ("localhost.", "a.localhost.", "::ffff:7f00:1", "[::ffff:a9fe:a9fe]", "0.1.2.3", "0.0.0.0"):
        assert local_host(host), host
    assert not local_host("10.1.2.3") and not local_host("intranet.example")
