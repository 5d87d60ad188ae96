"""The dashboard's files ship in the package, are small, and load nothing from elsewhere."""

from __future__ import annotations

import re

from crossroads.dashboard.assets import load_assets


def test_every_file_is_served_with_its_type() -> None:
    assets = load_assets()
    assert {"index.html", "dashboard.js", "crossroads.css", "favicon.svg"} <= set(assets)
    assert assets[""] is assets["index.html"]
    assert assets["dashboard.js"].content_type.startswith(b"text/javascript")
    assert len({a.etag for a in assets.values()}) == len(assets) - 1


def test_nothing_comes_from_another_origin_and_nothing_runs_inline() -> None:
    assets = load_assets()
    total = sum(len(a.body) for name, a in assets.items() if name)
    assert total < 100_000, f"the dashboard grew to {total} bytes"
    page = assets["index.html"].body.decode()
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert not re.search(r"<script>|<style>|\sstyle=|\son[a-z]+=", page)
    script = assets["dashboard.js"].body.decode()
    assert "innerHTML" not in script and "eval(" not in script
    assert re.findall(r"fetch\((\w+)", script) == ["url"]  # one fetch, to the relative API
    assert 'const API = "../v1/crossroads/admin/"' in script


def test_the_files_ship_in_the_wheel() -> None:
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert "dashboard/static/*" in pyproject["tool"]["setuptools"]["package-data"]["crossroads"]
