"""The manual (docs/) builds as a site with `mkdocs build --strict`: every page is in the nav and
every link between pages resolves."""

from __future__ import annotations

import shutil
import subprocess
import sys

import yaml

from conftest import REPO


def _build(root, site):
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(root / "mkdocs.yml"),
                           "-d", str(site)], capture_output=True, text=True, timeout=300)


def _nav_pages(nav) -> set[str]:
    pages = set()
    for item in nav:
        for value in item.values():
            pages |= _nav_pages(value) if isinstance(value, list) else {value}
    return pages


def test_every_page_is_in_the_nav():
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
    assert _nav_pages(nav) == {p.name for p in (REPO / "docs").glob("*.md")}


def test_docs_build_strict(tmp_path):
    p = _build(REPO, tmp_path / "site")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "site" / "pipeline" / "index.html").exists()


def test_a_broken_link_fails_the_build(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(REPO / "mkdocs.yml", root / "mkdocs.yml")
    shutil.copytree(REPO / "docs", root / "docs")
    page = root / "docs" / "findings.md"
    page.write_text(page.read_text() + "\nSee [a page that is not there](nowhere.md).\n")
    p = _build(root, tmp_path / "site")
    assert p.returncode != 0 and "nowhere.md" in p.stderr
