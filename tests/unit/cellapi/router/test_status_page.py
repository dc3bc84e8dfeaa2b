"""The status page as a pure function of Federation API messages: health colours, capacity bars, ages,
escaping, the RTT heatmap with unknown values and missing rows, unreachable sites shown, not hidden."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from cellfed.v1 import common_pb2, federation_pb2
from hypothesis import given
from hypothesis import strategies as st

from cellapi.router.status_page import capacity_bar, fmt_age, health_colour, render, rtt_colour

NOW_MS = 1_790_000_000_000
EVIL = '<script>alert("x")</script>&'


class Page(HTMLParser):
    """Sites (data-site, data-health), each one's text, and every tag seen."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.sites: dict[str, dict[str, str]] = {}
        self.text: dict[str, list[str]] = {}
        self.tags: list[str] = []
        self._site: str | None = None
        self._depth = 0
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = {k: v or "" for k, v in attrs}
        if tag == "section" and "data-site" in a:
            self._site, self._depth = a["data-site"], 0
            self.sites[a["data-site"]] = a
            self.text[a["data-site"]] = []
        if self._site is not None and tag == "section":
            self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if self._site is not None and tag == "section":
            self._depth -= 1
            if self._depth == 0:
                self._site = None

    def handle_data(self, data: str) -> None:
        if self._site is not None:
            self.text[self._site].append(data)

    def site_text(self, site: str) -> str:
        return "".join(self.text[site])


def capacity(vcpus: int, vfree: int, mem: int, mfree: int, instances: int = 0) -> common_pb2.Capacity:
    return common_pb2.Capacity(
        vcpus_total=vcpus,
        vcpus_free=vfree,
        memory_mb_total=mem,
        memory_mb_free=mfree,
        hosts_up=1,
        hosts_total=1,
        instances=instances,
    )


def site(
    name: str,
    health: common_pb2.Health.ValueType,
    cap: common_pb2.Capacity | None = None,
    age_ms: int = 1_500,
    router: bool = True,
) -> federation_pb2.SiteView:
    view = federation_pb2.SiteView(name=f"sites/{name}", site=name, region="eu-west", health=health)
    view.data_age.FromMilliseconds(age_ms)
    cell = view.cells.add(cell=f"{name}-c1", site=name, health=health, drained=health == common_pb2.DRAINED)
    if cap is not None:
        cell.capacity.CopyFrom(cap)
        cell.capacity_age.FromMilliseconds(age_ms)
    cell.rtt.FromMilliseconds(3)
    if router:
        view.heartbeat_age.FromMilliseconds(800)
        r = view.routers.add(router_id=f"{name}-r1", site=name, endpoint="127.0.0.1:7000")
        r.heartbeat_age.FromMilliseconds(800)
    return view


def sample() -> federation_pb2.ListSitesResponse:
    par = site("par1", common_pb2.HEALTHY, capacity(32, 24, 40_960, 10_240, instances=3))
    par.traffic.requests_per_second = 12.5
    par.traffic.errors_per_second = 0.25
    par.traffic.p99_latency.FromMilliseconds(42)
    par.traffic.window.FromSeconds(30)
    par.traffic.data_age.FromMilliseconds(1_200)
    sin = site("sin1", common_pb2.OFFLINE, capacity(64, 64, 131_072, 131_072), age_ms=45_000, router=False)
    sin.traffic.requests_per_second = 3.0  # its last report, from before it went away
    sin.traffic.data_age.FromSeconds(50)
    sin.traffic.window.FromSeconds(30)
    return federation_pb2.ListSitesResponse(
        observed_from="par1",
        sites=[
            par,
            site("nyc1", common_pb2.DEGRADED, capacity(64, 4, 131_072, 6_554)),
            sin,
            site("drn1", common_pb2.DRAINED, capacity(8, 8, 8192, 8192)),
            site("unk1", common_pb2.HEALTH_UNKNOWN),
        ],
        unreachable_sites=["sin1", "unk1"],
    )


def matrix() -> federation_pb2.RttMatrix:
    """par1's own row live, nyc1's as it last published it, sin1 never reported."""
    sites = ["nyc1", "par1", "sin1"]
    nyc = federation_pb2.RttRow(from_site="nyc1", rtt_ms=[0.4, 37.0, 95.0])
    nyc.data_age.FromMilliseconds(1_800)
    return federation_pb2.RttMatrix(
        sites=sites, rows=[federation_pb2.RttRow(from_site="par1", rtt_ms=[38.0, 0.6, -1.0]), nyc]
    )


def test_a_self_contained_page_that_refreshes_itself() -> None:
    html = render(sample(), matrix(), NOW_MS)
    page = Page(html)
    assert '<meta http-equiv="refresh" content="5">' in html
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert not re.search(r"(src|href)=|https?://|@import|url\(", html)  # nothing fetched from elsewhere
    assert '<span id="observer">par1</span>' in html
    assert "2026-09-21 14:13:20 UTC" in html  # now_ms only stamps when it was built


@pytest.mark.parametrize(
    ("name", "label", "colour"),
    [
        ("par1", "HEALTHY", "#2e7d32"),  # green
        ("nyc1", "DEGRADED", "#f9a825"),  # amber
        ("sin1", "OFFLINE", "#c62828"),  # red
        ("drn1", "DRAINED", "#757575"),  # grey
        ("unk1", "UNKNOWN", "#9e9e9e"),  # grey
    ],
)
def test_each_site_is_drawn_in_its_health_colour(name: str, label: str, colour: str) -> None:
    page = Page(render(sample(), matrix(), NOW_MS))
    attrs = page.sites[name]
    assert attrs["data-health"] == label
    assert f"--c:{colour}" in attrs["style"]
    assert label in page.site_text(name)


def test_health_colours_cover_every_value() -> None:
    assert health_colour(common_pb2.SUSPECT) == "#ef6c00"  # orange
    assert health_colour(common_pb2.HEALTH_UNSPECIFIED) == health_colour(common_pb2.HEALTH_UNKNOWN)
    assert len({health_colour(h) for h in common_pb2.Health.values()}) == 6


def test_capacity_bars_fill_to_the_used_share_and_colour_by_fullness() -> None:
    html = render(sample(), matrix(), NOW_MS)
    par = Page(html).site_text("par1")
    assert "8 used / 24 free" in par and "30.0 used / 10.0 GiB free" in par
    assert 'style="--b:#1e88e5" role="img" aria-label="vCPU: 8 used / 24 free"' in html
    assert re.search(r'aria-label="vCPU: 8 used / 24 free"[^>]*><span style="width:25\.0%">', html)
    nyc = Page(html).site_text("nyc1")
    assert "60 used / 4 free" in nyc
    assert '--b:#c62828" role="img" aria-label="vCPU: 60 used / 4 free"' in html  # >= 90 % full: red
    assert "--b:#f9a825" in capacity_bar("memory", 100, 25, " GiB")  # 75 %: amber
    assert 'width:100.0%"' in capacity_bar("vCPU", 8, -2, "")  # overcommitted: a full bar, no overflow
    assert capacity_bar("vCPU", 0, 0, "") == "\u2014"  # nothing published


def test_a_cell_without_capacity_says_so() -> None:
    text = Page(render(sample(), matrix(), NOW_MS)).site_text("unk1")
    assert "no capacity published" in text


def test_ages_instances_routers_and_traffic() -> None:
    page = Page(render(sample(), matrix(), NOW_MS))
    par = page.site_text("par1")
    assert "heartbeat 800 ms ago" in par and "data as of 1.5 s ago" in par
    assert "par1-r1 (127.0.0.1:7000" in par
    assert "requests 12.5/s" in par and "errors 0.2/s" in par and "p99 42 ms over 30 s" in par
    assert "reported 1.2 s ago" in par
    assert "requests: never reported" in page.site_text("nyc1")
    assert "requests 3.0/s" in page.site_text("sin1") and "p99 none" in page.site_text("sin1")
    assert "reported 50 s ago" in page.site_text("sin1")  # an unreachable site's last report, aged
    row = re.search(r'<tr class="cell" data-cell="par1-c1".*?</tr>', render(sample(), matrix(), NOW_MS))
    assert row is not None and "<td>3</td>" in row.group(0)  # instances


def test_unreachable_sites_are_shown_with_the_age_of_what_is_known() -> None:
    html = render(sample(), matrix(), NOW_MS)
    page = Page(html)
    sin = page.site_text("sin1")
    assert "OFFLINE" in sin and "unreachable" in sin
    assert "data as of 45 s ago" in sin and "no live router" in sin
    assert 'class="site unreachable"' in html
    assert re.search(r'id="unreachable">Unreachable: sin1, unk1', html)
    assert list(page.sites) == ["par1", "nyc1", "sin1", "drn1", "unk1"]  # all of them, in order


def test_everything_from_the_messages_is_escaped() -> None:
    sites = sample()
    evil = sites.sites.add(site=EVIL, region=EVIL, health=common_pb2.SUSPECT)
    evil.cells.add(cell=EVIL, health=common_pb2.SUSPECT, instances_by_status={EVIL: 2})
    evil.routers.add(router_id=EVIL, endpoint=EVIL)
    sites.observed_from = EVIL
    sites.unreachable_sites.append(EVIL)
    rtt = federation_pb2.RttMatrix(sites=[EVIL], rows=[federation_pb2.RttRow(from_site=EVIL, rtt_ms=[1])])
    html = render(sites, rtt, NOW_MS)
    assert "<script" not in html and EVIL not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in html
    page = Page(html)
    assert page.sites[EVIL]["data-health"] == "SUSPECT"  # the parser reads back exactly the name given
    assert "script" not in page.tags


@given(st.text(min_size=1, max_size=40).filter(lambda s: "\r" not in s and "\x00" not in s))
def test_any_site_name_reads_back_as_itself(name: str) -> None:
    sites = federation_pb2.ListSitesResponse(sites=[site(name, common_pb2.HEALTHY)])
    page = Page(render(sites, federation_pb2.RttMatrix(sites=[name]), NOW_MS))
    assert list(page.sites) == [name]
    assert page.tags.count("section") == 1 and "script" not in page.tags


def test_rtt_heatmap_unknown_values_and_missing_rows() -> None:
    html = render(sample(), matrix(), NOW_MS)
    table = html[html.index('<table class="rtt"') :]
    rows = re.findall(r"<tr><th[^>]*>(\w+)</th>(.*?)</tr>", table)
    assert [r[0] for r in rows] == ["nyc1", "par1", "sin1"]
    cells = dict((r[0], re.findall(r'<td style="background:([^"]+)">([^<]*)</td>', r[1])) for r in rows)
    assert [v for _, v in cells["par1"]] == ["38", "0.6", "?"]
    assert cells["par1"][2][0] == "#e0e0e0"  # unknown: grey
    assert [v for _, v in cells["nyc1"]] == ["0.4", "37", "95"] and "1.8 s ago" in table  # published
    assert [v for _, v in cells["sin1"]] == ["?", "?", "?"] and "no report" in table
    assert '<th class="from self">par1</th>' in table and "this router, live" in table
    assert "last published with its heartbeat" in table  # says where the other rows come from


def test_rtt_colour_goes_from_green_to_red_as_rtt_grows() -> None:
    hues = [int(re.findall(r"hsl\((\d+),", rtt_colour(ms))[0]) for ms in (0.2, 5, 20, 80, 150, 300, 900)]
    assert hues[0] == hues[1] == 120 and hues[-1] == hues[-2] == 0
    assert hues == sorted(hues, reverse=True) and len(set(hues)) == 5
    assert rtt_colour(-1) == rtt_colour(float("nan")) == "#e0e0e0"


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0 ms"),
        (850, "850 ms"),
        (4_200, "4.2 s"),
        (37_900, "37 s"),
        (184_000, "3 m 04 s"),
        (7_500_000, "2 h 05 m"),
        (273_600_000, "3 d 04 h"),
    ],
)
def test_ages_read_as_people_say_them(ms: int, text: str) -> None:
    assert fmt_age(ms) == text


def test_an_empty_federation_still_renders() -> None:
    html = render(federation_pb2.ListSitesResponse(), federation_pb2.RttMatrix(), NOW_MS)
    assert "knows of no sites yet" in html and "No RTTs known yet" in html
    assert "an unnamed router" in html
