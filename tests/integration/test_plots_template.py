"""The offline `dvc plots show` template: vega, vega-lite and vega-embed inlined, no CDN.

Built by scripts/build_plots_template.sh into .dvc/plots/offline.html and wired up in
.dvc/config as `[plots] html_template`, which DVC resolves against the .dvc directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from configobj import ConfigObj

REPO = Path(__file__).resolve().parents[2]
DVC_DIR = REPO / ".dvc"
TEMPLATE = DVC_DIR / "plots" / "offline.html"

PLACEHOLDER = "{plot_divs}"  # dvc_render.html.HTML.PLOTS_PLACEHOLDER_FORMAT_STR
CDN_RE = re.compile(r"cdn\.jsdelivr\.net|unpkg\.com|cdnjs", re.IGNORECASE)
SCRIPT_SRC_RE = re.compile(r"<script\b[^>]*\bsrc\s*=", re.IGNORECASE)
INLINE_SCRIPT_RE = re.compile(r"<script\b[^>]*>(.*?)</script>", re.IGNORECASE | re.DOTALL)
# The UMD wrappers of the three min.js files define these globals.
GLOBALS = (".vega={}", ".vegaLite={}", ".vegaEmbed=")

POINTS = [{"k": k, "nDCG": v} for k, v in ((5, 0.4), (10, 0.5), (20, 0.6))]


def _template() -> str:
    assert TEMPLATE.is_file(), "run scripts/build_plots_template.sh"
    return TEMPLATE.read_text(encoding="utf8")


def _library_scripts(html: str) -> list[str]:
    """The template's inlined script bodies (the ones that carry the libraries)."""
    return [s for s in INLINE_SCRIPT_RE.findall(html) if any(g in s for g in GLOBALS)]


def _assert_offline(page: str) -> None:
    assert not SCRIPT_SRC_RE.search(page), "page loads a script from a URL"
    assert '<script src="http' not in page
    assert not CDN_RE.search(page), "page mentions a CDN"


def test_template_is_offline_and_has_placeholder():
    html = _template()
    assert PLACEHOLDER in html
    assert "{scripts}" not in html, "{scripts} would bring dvc_render's CDN <script src> tags back"
    _assert_offline(html)
    libs = _library_scripts(html)
    assert len(libs) == 3 and all(any(g in s for s in libs) for g in GLOBALS)
    # Libraries load before the plot divs, whose inline scripts call vegaEmbed.
    assert html.rindex("</script>") < html.index(PLACEHOLDER)
    for pkg, major in (("vega", 5), ("vega-lite", 5), ("vega-embed", 6)):
        assert re.search(rf"\b{pkg}@{major}\.\d+\.\d+", html), f"{pkg} v{major} not recorded in header"
    assert "BSD" in html or "Redistribution and use" in html


def test_dvc_config_points_at_template():
    value = ConfigObj(str(DVC_DIR / "config"))["plots"]["html_template"]
    # dvc.commands.plots resolves a relative html_template against repo.dvc_dir.
    assert not os.path.isabs(value)
    assert (DVC_DIR / value).resolve() == TEMPLATE.resolve()


def test_dvc_render_embeds_inlined_libraries(tmp_path):
    from dvc_render import VegaRenderer, render_html

    renderer = VegaRenderer(POINTS, "ndcg.json", x="k", y="nDCG", title="tiny")
    out = render_html([renderer], tmp_path / "index.html", html_template=str(TEMPLATE))
    page = Path(out).read_text(encoding="utf8")

    _assert_offline(page)
    assert PLACEHOLDER not in page
    assert "vegaEmbed('#" in page and '"nDCG"' in page
    for lib in _library_scripts(_template()):
        assert lib in page


def test_dvc_plots_show_uses_template_offline(tmp_path):
    """`dvc plots show` in a fresh repo configured like this one: relative path, no network."""
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(tmp_path / "site")}
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=repo, env=env, check=True, timeout=60)

    value = ConfigObj(str(DVC_DIR / "config"))["plots"]["html_template"]
    (repo / ".dvc" / value).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TEMPLATE, repo / ".dvc" / value)
    with open(repo / ".dvc" / "config", "a", encoding="utf8") as f:
        f.write(f"[plots]\n    html_template = {value}\n")

    (repo / "ndcg.json").write_text(json.dumps(POINTS), encoding="utf8")
    subprocess.run(
        [*dvc, "plots", "show", "ndcg.json", "-x", "k", "-y", "nDCG", "-o", "out"],
        cwd=repo, env=env, check=True, timeout=60, capture_output=True,
    )
    page = (repo / "out" / "index.html").read_text(encoding="utf8")

    _assert_offline(page)
    assert "vegaEmbed('#" in page
    for lib in _library_scripts(_template()):
        assert lib in page


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
