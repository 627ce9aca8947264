"""The dashboard in headless Chromium against a live pipeline with data: every chart drawn."""

from __future__ import annotations

import asyncio
import re
import shutil
from html.parser import HTMLParser

import pytest

from photostream.samples import Camera, sample_photo
from tests.streams.uploads import upload

pytestmark = pytest.mark.integration

CHARTS = ("images-per-minute", "latency", "stages", "bytes", "failures", "cameras")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Flags this machine needs (no network beyond loopback): see the environment notes.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000",
)  # fmt: skip


class Charts(HTMLParser):
    """Collects each chart's attributes and how many marks (paths, rects, circles) it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, dict] = {}
        self._current: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "svg" and "data-chart" in attributes:
            self._current = attributes["data-chart"]
            self.charts[self._current] = {**attributes, "marks": 0}
        elif self._current and tag in {"path", "rect", "circle"}:
            self.charts[self._current]["marks"] += 1

    def handle_endtag(self, tag):
        if tag == "svg":
            self._current = None


async def render(url: str, tmp_path, screenshot: bool = False) -> str:
    profile = tmp_path / "chromium-profile"
    args = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000"]
    if screenshot:
        args.append(f"--screenshot={tmp_path / 'dashboard.png'}")
    else:
        args.append("--dump-dom")
    process = await asyncio.create_subprocess_exec(
        CHROMIUM, *args, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()[-2000:]
    return out.decode()


async def test_token_guards_the_dashboard_when_set(make_gateway, sinks):
    sinks.start()
    gateway = await make_gateway(token="s3cret-dashboard")
    assert (await gateway.get("/dashboard")).status == 404
    assert (await gateway.get("/dashboard/data?token=wrong")).status == 404
    assert (await gateway.get("/dashboard?token=s3cret-dashboard")).status == 200
    response = await gateway.get("/dashboard/data", headers={"Authorization": "Bearer s3cret-dashboard"})
    assert response.status == 200
    assert set(await response.json()) >= {"throughput", "latency", "failures", "cameras"}


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
@pytest.mark.timeout(400)
async def test_every_chart_renders_in_headless_chromium_with_live_data(
    make_gateway, workers, sinks, tmp_path, unique_name
):
    gateway = await make_gateway()
    sinks.start()
    workers.start()
    cameras = [Camera("Canon", "EOS R5", "RF 50mm"), Camera("SONY", "ILCE-7M4", "FE 35mm")]
    for index in range(2):
        key = await gateway.services.keys.create(unique_name("ph"))
        files = [
            (f"{i}.jpg", sample_photo(300 + 10 * index + i, size=(640, 480), camera=cameras[index])) for i in range(3)
        ]
        files.append(("cut.jpg", sample_photo(399)[:3000]))
        await upload(gateway, key, *files)
    url = str(gateway.make_url("/dashboard"))
    # Wait until the pipeline has something to show, as a person watching would.
    for _ in range(120):
        data = await (await gateway.get("/dashboard/data")).json()
        if sum(r["images"] for r in data["throughput"]) >= 6 and data["failures"] and data["latency"]:
            break
        await asyncio.sleep(1)
    dom = await render(url, tmp_path)
    parser = Charts()
    parser.feed(dom)
    for name in CHARTS:
        chart = parser.charts.get(name)
        assert chart is not None, name
        assert chart.get("data-rendered") == "true", (name, chart)
        assert chart["marks"] > 0, (name, chart)
    assert int(parser.charts["images-per-minute"]["data-series"]) >= 2  # one line per photographer
    assert re.search(r'id="kpi-images">\s*(\d+)', dom)
    await render(url, tmp_path, screenshot=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
