"""Worksheet markup -> items, one item per source line, as CodaLab's `parse_worksheet_form` does.

Line types (codalab/lib/worksheet_util.py):
    // comment                  a directive that renders nothing
    [anything]{bundle_spec}     a bundle item
    [anything]{{worksheet}}     a sub-worksheet item
    % directive args            a directive, tokenized like a shell line
    anything else               markup (consecutive non-blank lines merge into one block later)
"""

import re
import shlex
from dataclasses import dataclass

MARKUP, DIRECTIVE, BUNDLE, WORKSHEET = "markup", "directive", "bundle", "worksheet"
ITEM_TYPES = (MARKUP, DIRECTIVE, BUNDLE, WORKSHEET)

BUNDLE_RE = re.compile(r"^\s*(\[(.*)\])?\s*\{([^{]*)\}\s*$")
SUBWORKSHEET_RE = re.compile(r"^\s*(\[(.*)\])?\s*\{\{(.*)\}\}\s*$")
DIRECTIVE_RE = re.compile(r"^\s*%\s*(.*?)\s*$")


@dataclass
class Item:
    """One worksheet line. value: markup text, directive text (after %), or the spec in {...}."""

    type: str
    value: str
    line: int  # 1-based source line: the number inline errors name
    bundle_uuid: str | None = None  # resolved when stored or interpreted
    subworksheet_uuid: str | None = None

    @property
    def is_comment(self) -> bool:
        return self.type == DIRECTIVE and self.value.startswith("//")

    def tokens(self) -> list[str]:
        """A directive's words, quoted args kept together (`% add '#epochs' /args.json:n %d`)."""
        if self.is_comment:
            return []
        return shlex.split(self.value, comments=False, posix=True)


def parse_line(line: str, number: int) -> Item:
    if line.startswith("//"):
        return Item(DIRECTIVE, line, number)
    m = BUNDLE_RE.match(line)
    if m:
        return Item(BUNDLE, m.group(3).strip(), number)
    m = SUBWORKSHEET_RE.match(line)
    if m:
        return Item(WORKSHEET, m.group(3).strip(), number)
    m = DIRECTIVE_RE.match(line)
    if m:
        return Item(DIRECTIVE, m.group(1), number)
    return Item(MARKUP, line, number)


def parse(text: str) -> list[Item]:
    """Worksheet source -> [Item]. Never fails: malformed directives are reported when interpreted."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # a trailing newline is not an extra blank line
    return [parse_line(line.rstrip("\r"), i + 1) for i, line in enumerate(lines)]
