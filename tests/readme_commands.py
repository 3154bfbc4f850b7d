"""README.md's commands and file snippets, as tests/test_readme.py runs them.

    python -c "from tests.readme_commands import readme_commands as r; print(*r(), sep='\\n')"

A command is every line of a bash (or indented) code block, with `\\` continuations joined and
the trailing comment dropped, and every `$ ` line of an output block. Placeholders the README
uses (`<date>/<time>`, `<ckpt>`, `...`) are resolved by the test, which knows the runs it made.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


@dataclass
class Command:
    text: str  # as written (continuations joined, comment dropped)
    line: int  # where it starts in README.md
    expects_error: bool = False  # the README shows it stopping with `error:`
    shown_with_output: bool = False  # a `$ ` line of an output block (a demonstration)

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.text, comments=True)

    def __str__(self) -> str:
        return self.text


def _blocks(lines: list[str]) -> list[tuple[str, int, list[str]]]:
    """(language, first line number, body) of every fenced or indented code block."""
    blocks, i = [], 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if fence:
            start, body = i + 2, []
            i += 1
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            blocks.append((fence.group(1), start, body))
        elif lines[i].startswith("    ") and i > 0 and not lines[i - 1].strip():
            start, body = i + 1, []
            while i < len(lines) and lines[i].startswith("    "):
                body.append(lines[i][4:])
                i += 1
            blocks.append(("indented", start, body))
            continue
        i += 1
    return blocks


def readme_commands(path: Path = README) -> list[Command]:
    commands: list[Command] = []
    for language, start, body in _blocks(path.read_text().splitlines()):
        if language in ("bash", "sh", "indented"):
            pending, first = "", 0
            for offset, raw in enumerate(body):
                if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
                    continue
                first = first if pending else start + offset
                pending = f"{pending} {raw.strip()}" if pending else raw.strip()
                if pending.endswith("\\"):
                    pending = pending[:-1].rstrip()
                    continue
                commands.append(Command(_drop_comment(pending), first))
                pending = ""
        elif language == "":  # output blocks: `$ command` lines, then what it printed
            for offset, raw in enumerate(body):
                if raw.startswith("$ "):
                    printed = []
                    for after in body[offset + 1 :]:
                        if after.startswith("$ "):
                            break
                        printed.append(after)
                    failed = any(p.startswith("error:") for p in printed)
                    commands.append(Command(raw[2:].strip(), start + offset, failed, True))
    return commands


def _drop_comment(text: str) -> str:
    """The command without its trailing `# ...` (a # inside quotes or a word is kept)."""
    quote = None
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].strip()
    return text.strip()


def snippet(path_comment: str, path: Path = README) -> str:
    """The body of the code block whose first line is `# <path_comment>` (a recipe's file)."""
    for _, _, body in _blocks(path.read_text().splitlines()):
        if body and body[0].strip() == f"# {path_comment}":
            return "\n".join(body) + "\n"
    raise AssertionError(f"README.md has no code block starting with '# {path_comment}'")
