"""`# noqa` comments on a line and `# mlplint: disable=...` comments for the whole file."""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass, field
from typing import Optional

_CODE_LIST = r"[A-Za-z]+[0-9]+(?:\s*,\s*[A-Za-z]+[0-9]+)*"
_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>" + _CODE_LIST + r"))?", re.IGNORECASE)
_FILE_DISABLE = re.compile(r"#\s*mlplint:\s*disable\s*=\s*(?P<codes>" + _CODE_LIST + r")", re.IGNORECASE)


def _split(codes: str) -> set[str]:
    return {code.strip().upper() for code in codes.split(",") if code.strip()}


@dataclass
class Suppressions:
    # line -> codes suppressed there (None: a bare noqa suppresses everything)
    lines: dict[int, Optional[set[str]]] = field(default_factory=dict)
    file_codes: set[str] = field(default_factory=set)

    @classmethod
    def from_source(cls, text: str) -> "Suppressions":
        found = cls()
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
        except (tokenize.TokenError, SyntaxError):
            return found
        for token in tokens:
            if token.type != tokenize.COMMENT:
                continue
            disable = _FILE_DISABLE.search(token.string)
            if disable:
                found.file_codes |= _split(disable.group("codes"))
                continue
            noqa = _NOQA.search(token.string)
            if noqa:
                line = token.start[0]
                codes = noqa.group("codes")
                if codes is None:
                    found.lines[line] = None
                elif found.lines.get(line, set()) is not None:
                    found.lines[line] = found.lines.get(line, set()) | _split(codes)
        return found

    def suppresses(self, code: str, line: int, end_line: int) -> bool:
        if code in self.file_codes:
            return True
        for candidate in {line, end_line}:
            if candidate in self.lines:
                codes = self.lines[candidate]
                if codes is None or code in codes:
                    return True
        return False
