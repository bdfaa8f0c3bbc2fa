"""The README gets a newcomer going in five minutes, and the documentation's links hold.

Hermetic: reads only files of this repository (README.md, docs/*.md, .ci/run, bench/run.py, git's list of tracked links).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
TEMPLATES_URL = "https://github.com/opencenter-cloud/openCenter-gitops-templates.git"
# The two commands on a fresh machine, exactly as CI (.ci/run) and newcomers run them.
INSTALL = ("python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/copier copy "
           "--trust --defaults --data template=platform \"$PWD\" ../acme-gitops")
TEST_COMMAND = ".venv/bin/python -m pytest -n auto"

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)  # https:, mailto:, //host


def split_fences(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(line number, line) outside and inside fenced code blocks."""
    outside, inside, fenced = [], [], None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if match and (fenced is None or match.group(1) == fenced):
            fenced = match.group(1) if fenced is None else None
            continue
        (outside if fenced is None else inside).append((number, line))
    return outside, inside


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code spans removed."""
    return [(number, INLINE_CODE.sub("", line)) for number, line in split_fences(text)[0]]


def links(path: Path) -> list[tuple[int, str]]:
    found = []
    for number, line in prose_lines(path.read_text()):
        found += [(number, target) for target in LINK.findall(line)]
        found += [(number, target) for target in REFERENCE_LINK.findall(line)]
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lowercased, punctuation but '-' and '_' dropped,
    spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def headings(path: Path) -> list[tuple[int, str]]:
    """(level, text) of every ATX heading outside code blocks."""
    return [(len(match.group(1)), match.group(2)) for _, line in split_fences(path.read_text())[0]
            if (match := HEADING.match(line))]


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, text in headings(path):
        base = slug(text)
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def section(text: str, title: str) -> str:
    """The body of the `## title` section of a markdown text."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"no section '## {title}'"
    return match.group(1)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_readme_is_at_most_200_lines():
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move reference material into docs/"


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_relative_link_resolves_inside_the_repository(page):
    problems = []
    for number, target in links(page):
        where = f"{rel(page)}:{number}: {target}"
        if not target or EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        if file_part.startswith("/"):
            problems.append(f"{where}: absolute path; link relative to the page")
            continue
        resolved = (page.parent / file_part).resolve() if file_part else page
        if not resolved.is_relative_to(ROOT):
            problems.append(f"{where}: points outside the repository")
            continue
        if not resolved.exists():
            problems.append(f"{where}: no such file")
            continue
        if anchor:
            if resolved.suffix != ".md":
                problems.append(f"{where}: anchor on a file that is not markdown")
            elif anchor not in anchors(resolved):
                problems.append(f"{where}: no heading '#{anchor}' in {rel(resolved)}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_no_reference_outside_the_repository(page):
    """Users get this repository only: no path into the workspace around it (../shared/…)."""
    text = page.read_text()
    assert "../shared" not in text and "shared/reference" not in text, rel(page)
    for number, target in links(page):
        assert not target.startswith(("file:", "/")), f"{rel(page)}:{number}: {target}"


def test_slug_follows_github():
    assert slug("New app: an app repository, registered on the platform") == \
        "new-app-an-app-repository-registered-on-the-platform"
    assert slug("Template versions: release tags and HEAD") == "template-versions-release-tags-and-head"
    assert slug("Granting more: hostnames, egress, quota") == "granting-more-hostnames-egress-quota"
    assert slug("The `check_package_url` answer") == "the-check_package_url-answer"


def test_readme_has_a_table_of_contents_of_its_sections():
    text = README.read_text()
    sections = [title for level, title in headings(README) if level == 2]
    toc_title = next((t for t in sections if t.lower() in ("contents", "table of contents")), None)
    assert toc_title, "README.md needs a '## Contents' section"
    toc = [target for target in LINK.findall(INLINE_CODE.sub("", section(text, toc_title)))]
    assert toc and all(target.startswith("#") for target in toc), toc
    own = {slug(title) for title in sections if title != toc_title}
    assert {target[1:] for target in toc} == own, "the table of contents must list every ## section"
    # What a newcomer runs first comes first.
    assert sections[sections.index(toc_title) + 1] == "Two commands on a fresh machine"


def test_readme_gives_the_two_commands_on_a_fresh_machine_first():
    body = section(README.read_text(), "Two commands on a fresh machine")
    lines = [line.strip() for line in body.splitlines()]
    assert INSTALL in lines and TEST_COMMAND in lines
    assert lines.index(INSTALL) < lines.index(TEST_COMMAND)


def test_ci_runs_exactly_the_readme_test_command():
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert TEST_COMMAND in [line.strip() for line in README.read_text().splitlines()]
    assert TEST_COMMAND in ci, ".ci/run must run the README's test command"


@pytest.mark.parametrize("page", [README, ROOT / "docs" / "development.md"], ids=rel)
def test_what_the_docs_say_of_ci_run_is_what_it_does(page):
    """.ci/run clones nothing: it runs in the checkout it is in, whose .venv it deletes first. A
    page that promised a clean clone sent a reader's uncommitted work and .venv into it unwarned."""
    ci = (ROOT / ".ci" / "run").read_text()
    assert "git clone" not in ci and "rm -rf .venv" in ci
    said = " ".join(" ".join(line for _, line in split_fences(page.read_text())[0]).split())
    about = said[said.index("`.ci/run`"):][:400]
    assert not re.search(r"\b(clean|fresh) clone\b", about), about
    assert "deleting `.venv`" in about or "deletes `.venv`" in about, about


def test_everyday_copies_use_the_templates_git_url():
    """A local path as source works on that machine only; only the try-out copy uses "$PWD"."""
    text = README.read_text()
    code = [line for _, line in split_fences(text)[1]]
    copies = [line for line in code if re.search(r"\bcopier copy\b", line) and line.strip() != INSTALL]
    assert copies, "the README shows the everyday copies"
    for line in copies:
        assert TEMPLATES_URL in line, line
    for task in ("New customer", "New app", "Pull updates"):
        assert any(title.startswith(task) for _, title in headings(README)), task


def test_bench_markers_are_where_bench_run_writes_the_figures():
    """bench/run.py --docs replaces the text between its two markers in one file, docs/performance.md;
    the README only links there (the figures, with their unmet targets, are reference material)."""
    tree = ast.parse((ROOT / "bench" / "run.py").read_text())
    markers, target = {}, None
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple):
            for name, value in zip(node.targets[0].elts, getattr(node.value, "elts", [])):
                if isinstance(name, ast.Name) and isinstance(value, ast.Constant):
                    markers[name.id] = value.value
        if isinstance(node, ast.FunctionDef) and node.name == "write_figures":
            parts = [n.value for d in node.args.defaults for n in ast.walk(d)
                     if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            target = ROOT.joinpath(*parts)
    begin, end = markers["FIGURES_BEGIN"], markers["FIGURES_END"]
    assert target == ROOT / "docs" / "performance.md", target
    text = target.read_text()
    assert text.count(begin) == 1 and text.count(end) == 1, rel(target)
    assert text.index(begin) < text.index(end)
    assert "bench:begin" not in README.read_text() and "(docs/performance.md)" in README.read_text()


def test_every_tracked_symbolic_link_stays_inside_the_repository():
    """A clone stands alone: no tracked link to a developer's own folder (a .venv linked into a
    git worktree, committed by mistake, replaces a clone's virtual environment)."""
    listed = subprocess.run(["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode:
        pytest.skip("not a git checkout")
    links = [line.split("\t", 1)[1] for line in listed.stdout.splitlines() if line.startswith("120000 ")]
    assert links, "hooks/includes is a tracked link"
    for link in links:
        target = (ROOT / link).parent / os.readlink(ROOT / link)
        assert not os.path.isabs(os.readlink(ROOT / link)) and target.resolve().is_relative_to(ROOT), link
    assert not {".venv", ".renovate"} & set(links)
