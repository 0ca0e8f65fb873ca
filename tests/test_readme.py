"""The manual's commands exist and run as written.

A fenced ```sh block right after the line ``<!-- readme-test -->`` in README.md is safe
to run: it runs here, from the repository root, with a private ``HOME`` and state
directory and the venv's programs first on ``PATH``. Every other shell block in the
README and docs/ is checked without running it: each ``emily ...`` command must parse
with the real CLI parser, each ``make`` target must exist, and each repository path and
benchmark flag it names must exist.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from emily.cli.main import build_parser

REPO = Path(__file__).resolve().parent.parent
MARK = "<!-- readme-test -->"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
OPERATORS = {"|", "||", "&&", ";", "&"}
REDIRECTS = {">", ">>", "<", "2>", "2>>"}
REPO_DIRS = ("bench/", "tests/", "examples/", "docs/", "python/", "hosts/", "modules/")


@dataclass(frozen=True)
class Block:
    """One fenced shell block: the page, its first line number and its text."""

    page: Path
    line: int
    text: str
    runnable: bool

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """Every ```sh block of ``page``; ``runnable`` when the line before it is the mark."""
    found: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = lines[i].strip()
        if fence.startswith("```"):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            if fence == "```sh":
                marked = i > 0 and lines[i - 1].strip() == MARK
                found.append(Block(page, i + 2, "\n".join(lines[i + 1 : end]), marked))
            i = end
        i += 1
    return found


def _logical_lines(text: str) -> list[str]:
    """Lines of a shell block, with continuations and multi-line quotes joined."""
    out: list[str] = []
    buffer = ""
    for line in text.replace("\\\n", " ").splitlines():
        buffer = f"{buffer}\n{line}" if buffer else line
        try:
            shlex.split(buffer, comments=True)
        except ValueError:  # an open quote: the command goes on on the next line
            continue
        out.append(buffer)
        buffer = ""
    assert not buffer, f"unclosed quote in {text!r}"
    return out


def commands(text: str) -> list[list[str]]:
    """The simple commands of a shell block, without comments, redirections and VAR= prefixes."""
    out: list[list[str]] = []
    for line in _logical_lines(text):
        current: list[str] = []
        tokens = iter(shlex.split(line, comments=True))
        for token in tokens:
            if token in REDIRECTS:
                next(tokens, None)  # the file redirected to or from
            elif token in OPERATORS:
                out.append(current)
                current = []
            else:
                current.append(token)
        out.append(current)
    cleaned = []
    for argv in out:
        while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):
            argv = argv[1:]
        if argv:
            cleaned.append(argv)
    return cleaned


ALL_BLOCKS = [b for page in PAGES for b in blocks(page)]
RUNNABLE = [b for b in ALL_BLOCKS if b.runnable]


def test_the_readme_marks_blocks_to_run() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert text.count(MARK) == len([b for b in RUNNABLE if b.page.name == "README.md"]), (
        f"every {MARK} must stand on the line right before a ```sh block"
    )
    assert len(RUNNABLE) >= 3


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.where for b in RUNNABLE])
def test_marked_block_runs(block: Block, tmp_path: Path) -> None:
    bindir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMILY_", "XDG_"))}
    env |= {
        "PATH": f"{bindir}{os.pathsep}{env.get('PATH', '')}",
        "HOME": str(tmp_path / "home"),
        "EMILY_STATE_DIR": str(tmp_path / "state"),
    }
    (tmp_path / "home").mkdir()
    for argv in commands(block.text):
        if shutil.which(argv[0], path=env["PATH"]) is None:
            pytest.skip(f"{argv[0]} is not installed (make test installs it)")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.text],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, (
        f"{block.where} failed ({result.returncode}):\n{block.text}\n"
        f"stdout:\n{result.stdout[-2000:]}\nstderr:\n{result.stderr[-2000:]}"
    )


def _make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z-]*):", text, flags=re.MULTILINE))


def test_every_shown_command_exists() -> None:
    """Each ``emily``, ``make``, repository path and benchmark flag in the shell blocks."""
    parser = build_parser()
    targets = _make_targets()
    bench_common = "".join(p.read_text() for p in (REPO / "bench").glob("*common.py"))
    problems: list[str] = []
    for block in ALL_BLOCKS:
        for argv in commands(block.text):
            if argv[0] == "emily":
                try:
                    parser.parse_args(argv[1:])
                except SystemExit as exc:
                    if exc.code != 0:  # --help exits 0
                        problems.append(f"{block.where}: `{shlex.join(argv)}` does not parse")
            if argv[0] == "make":
                problems += [
                    f"{block.where}: no make target {t!r}"
                    for t in argv[1:]
                    if not t.startswith("-") and "=" not in t and t not in targets
                ]
            for token in argv:
                if token.startswith(REPO_DIRS) and not (REPO / token.rstrip("/")).exists():
                    problems.append(f"{block.where}: {token} does not exist")
            script = next((t for t in argv if t.startswith("bench/") and t.endswith(".py")), None)
            if script and (REPO / script).is_file():
                source = (REPO / script).read_text() + bench_common
                problems += [
                    f"{block.where}: {script} has no option {flag}"
                    for flag in (t.split("=")[0] for t in argv if t.startswith("--"))
                    if f'"{flag}"' not in source
                ]
    assert not problems, "\n".join(problems)


def _slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_links_between_pages_resolve() -> None:
    problems = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # an external URL
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                problems.append(f"{page.name}: {target}: no such file")
                continue
            if anchor and dest.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", dest.read_text(encoding="utf-8"), re.M)
                if anchor not in {_slug(h) for h in headings}:
                    problems.append(f"{page.name}: {target}: no such heading")
    assert not problems, "\n".join(problems)


def test_the_manual_names_no_developer_machine_and_no_work_process() -> None:
    leak = re.compile(r"/(?:work/|tmp/[a-z]|root/|home/[a-z])")
    talk = re.compile(
        r"\bsession [0-9]|\bissue [0-9#]|\bthe issue'?s?\b|other engineers|engineers' jobs",
        re.IGNORECASE,
    )
    problems = [
        f"{page.relative_to(REPO)}:{n}: {line.strip()}"
        for page in PAGES
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
        if leak.search(line) or talk.search(line)
    ]
    assert not problems, "\n".join(problems)
