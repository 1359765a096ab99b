"""The README is a front door (issue 25, item 7): at most 250 lines, its pictures exist, and every relative
link of the README and of docs/*.md reaches a file (and, with ``#anchor``, a heading of that file)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]

MD_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_REF = re.compile(r"<(?:img|a)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", re.I)
MD_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)")
HTML_IMAGE = re.compile(r"<img\b[^>]*?\bsrc=\"([^\"]+)\"", re.I)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code (links there are not links)."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def _relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) and not target.startswith("//")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\*|_(?=\w)|(?<=\w)_", "", heading.strip()).lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    out, seen = set(), {}
    for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", FENCE.sub("", path.read_text(encoding="utf-8")), re.M):
        s = slug(m.group(1))
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def links(path: Path) -> list[str]:
    text = _prose(path.read_text(encoding="utf-8"))
    return [t for t in MD_LINK.findall(text) + HTML_REF.findall(text) if _relative(t)]


def test_the_readme_is_at_most_250_lines_and_keeps_its_space_front_matter():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    front = text.split("---\n")[1]  # the Hugging Face Space's YAML
    for key in ("title: RLHF Lab", "sdk: gradio", "app_file: app.py", "python_version:", "sdk_version:"):
        assert key in front, key


def test_the_readme_shows_the_playground_and_a_training_run_first_and_the_pictures_exist():
    text = _prose(README.read_text(encoding="utf-8"))
    shown = MD_IMAGE.findall(text) + HTML_IMAGE.findall(text)
    assert shown[:2] == ["docs/img/playground.png", "docs/img/training.png"]
    for src in shown:
        assert _relative(src), src
        path = ROOT / unquote(src)
        assert path.is_file(), f"README shows {src}: no such file"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size < 250_000, src


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert links(page) or page != README  # the README links its docs pages
    for target in links(page):
        file, _, anchor = unquote(target).partition("#")
        dest = (page.parent / file).resolve() if file else page
        assert dest.exists(), f"{page.name}: {target} points at nothing"
        if anchor and dest.suffix == ".md":
            assert anchor in anchors(dest), f"{page.name}: {target}: no heading with that anchor in {dest.name}"


def test_the_link_checker_catches_a_dead_link_and_a_dead_anchor(tmp_path):
    (tmp_path / "a.md").write_text("# Title\n\n## Speed: side by side with trl 0.11.4\n\n[x](b.md) ![y](img/z.png) `[no](c.md)`\n")
    assert links(tmp_path / "a.md") == ["b.md", "img/z.png"]
    assert anchors(tmp_path / "a.md") == {"title", "speed-side-by-side-with-trl-0114"}


def test_every_docs_page_is_linked_from_the_readme_or_another_page():
    linked = {(p.parent / unquote(t).partition("#")[0]).resolve() for p in PAGES for t in links(p)}
    for page in PAGES[1:]:
        assert page.resolve() in linked, f"{page.relative_to(ROOT)} is linked from nowhere"
