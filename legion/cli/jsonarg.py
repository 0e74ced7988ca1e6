"""``JSON_TEXT``: the type of every ``--json`` option: JSON text given inline, ``@FILE`` read from a file, or
``@-`` read from standard input, as curl's ``-d @file`` (JSON text cannot start with ``@``, so nothing is lost).

The commands that take ``--json`` (``legion model test``, ``legion model invoke``) get the text either way and
parse it themselves; a file that cannot be read is a usage error (exit code 2) naming it.

    @click.option("--json", "payload", type=JSON_TEXT, required=True, help="... (or @FILE, @- for stdin).")
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


class JsonText(click.ParamType[str, str]):
    """JSON text, or ``@FILE`` / ``@-`` to read it from a file or standard input."""

    name = "JSON|@FILE|@-"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not text.startswith("@"):
            return text
        source = text[1:]
        if source == "-":
            return sys.stdin.read()
        try:
            return Path(source).read_text(encoding="utf-8")
        except FileNotFoundError:
            self.fail(f"no such file: {source}", param, ctx)
        except (OSError, UnicodeDecodeError) as exc:
            self.fail(f"cannot read {source}: {exc}", param, ctx)


JSON_TEXT = JsonText()
