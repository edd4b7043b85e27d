"""Tables as the CLI prints them: ``rich`` tables rendered to plain text (no colour codes).

Columns are sized to their content, so alignment holds when a number gains a digit, and the
text is the same on a terminal, in a pipe and in the README.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    right: Sequence[int] = (),
    caption: str | None = None,
) -> str:
    """The table as text; ``right`` lists the columns to right-align (numbers). The title and the
    caption are lines above and under the table, never wrapped to the table's width."""
    table = Table(box=box.SIMPLE_HEAD)
    for i, header in enumerate(headers):
        table.add_column(Text(header), justify="right" if i in right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))  # Text: brackets are not markup
    buffer = io.StringIO()
    Console(file=buffer, width=1000, color_system=None, force_terminal=False, highlight=False).print(table)
    text = "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()).strip("\n")
    return "\n".join([*([title, ""] if title else []), text, *([caption] if caption else [])])
