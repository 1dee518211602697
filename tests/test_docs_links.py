"""The README and docs/: every relative link resolves, every doc is reachable, the first screen is a newcomer's path."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]

FENCE = re.compile(r"^```.*?^```[^\n]*$", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def prose(text: str) -> str:
    """The Markdown without fenced code blocks, whose '# comments' are not headings and whose brackets not links."""
    return FENCE.sub("", text)


def anchors(text: str) -> set[str]:
    """GitHub's anchors for the headings: lower case, punctuation dropped, spaces as '-', repeats numbered."""
    seen: dict[str, int] = {}
    found = set()
    for title in HEADING.findall(prose(text)):
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return found


def broken_links(page: Path) -> list[str]:
    """Each relative link of ``page`` whose file or heading anchor does not exist, as 'target: why'."""
    broken = []
    for target in LINK.findall(CODE_SPAN.sub("", prose(page.read_text()))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path_text, _, anchor = target.partition("#")
        path = (page.parent / path_text).resolve() if path_text else page
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path.read_text()):
            broken.append(f"{target}: no heading with anchor #{anchor} in {path.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file_and_heading(page: Path) -> None:
    assert not broken_links(page), f"{page.relative_to(ROOT)}: {broken_links(page)}"


def test_the_link_check_finds_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## `senet train`'s options\n\n```\n# not a heading\n```\n")
    page = tmp_path / "page.md"
    page.write_text("[a](other.md#senet-trains-options) [b](missing.md) [c](other.md#not-a-heading) "
                    "[d](#page) `[e](in-code.md)` [f](https://example.org/x)\n\n# Page\n")
    assert broken_links(page) == ["missing.md: no such file",
                                  "other.md#not-a-heading: no heading with anchor #not-a-heading in other.md"]


def test_every_doc_is_linked_from_the_readme() -> None:
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in LINK.findall(prose((ROOT / "README.md").read_text()))}
    orphans = [d.name for d in DOCS if d.resolve() not in linked]
    assert DOCS and not orphans, f"docs not linked from the README's Read more: {orphans}"


def test_the_first_screen_says_how_to_install_start_use_own_data_train_and_read_more() -> None:
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:50])
    for needed in ("pip install", "GB", "download.pytorch.org/whl/cpu", "senet dashboard", "folder:PATH",
                   "senet train", "(docs/"):
        assert needed in first_screen, f"the README's first 50 lines do not mention {needed!r}"


def test_the_readme_shows_the_test_command_that_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in (ROOT / "README.md").read_text(), f"the README does not show .ci/run's command {ci!r}"
