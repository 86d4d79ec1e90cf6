"""`# noqa` comments on a line; `# mlplint: noqa` (every finding), `# mlplint: noqa: CODES` and
`# mlplint: disable=CODES` comments for the whole file, as ruff reads `# ruff: noqa`."""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass, field
from typing import Optional

_CODE_LIST = r"[A-Za-z]+[0-9]+(?:\s*,\s*[A-Za-z]+[0-9]+)*"
_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>" + _CODE_LIST + r"))?", re.IGNORECASE)
_FILE_DISABLE = re.compile(r"#\s*mlplint:\s*disable\s*=\s*(?P<codes>" + _CODE_LIST + r")", re.IGNORECASE)
# `# mlplint: noqa` alone, or with `: CODES`; `# mlplint: noqa ML201` (no colon) is not read as "all"
_FILE_NOQA = re.compile(r"#\s*mlplint:\s*noqa\s*(?::\s*(?P<codes>" + _CODE_LIST + r")\s*)?$", re.IGNORECASE)
_DIRECTIVE = re.compile(r"#\s*mlplint:", re.IGNORECASE)  # a comment that starts as one of ours


def _split(codes: str) -> set[str]:
    return {code.strip().upper() for code in codes.split(",") if code.strip()}


@dataclass
class Suppressions:
    # line -> codes suppressed there (None: a bare noqa suppresses everything)
    lines: dict[int, Optional[set[str]]] = field(default_factory=dict)
    file_codes: set[str] = field(default_factory=set)
    whole_file: bool = False  # `# mlplint: noqa`: no finding of the file is reported
    unknown_directives: list[tuple[int, str]] = field(default_factory=list)  # (line, comment)
    # every (line, code, directive) written, to warn about codes that name no rule
    mentioned: list[tuple[int, str, str]] = field(default_factory=list)

    @classmethod
    def from_source(cls, text: str) -> "Suppressions":
        found = cls()
        lowered = text.lower()
        if "noqa" not in lowered and "mlplint" not in lowered:
            return found  # no directive can be there: spare the tokenizer
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
        except (tokenize.TokenError, SyntaxError):
            return found
        for token in tokens:
            if token.type != tokenize.COMMENT:
                continue
            disable = _FILE_DISABLE.search(token.string)
            if disable:
                codes = _split(disable.group("codes"))
                found.file_codes |= codes
                found.mentioned.extend((token.start[0], code, "# mlplint: disable") for code in sorted(codes))
                continue
            file_noqa = _FILE_NOQA.match(token.string.rstrip())
            if file_noqa:
                if file_noqa.group("codes") is None:
                    found.whole_file = True
                else:
                    codes = _split(file_noqa.group("codes"))
                    found.file_codes |= codes
                    found.mentioned.extend((token.start[0], code, "# mlplint: noqa") for code in sorted(codes))
                continue
            if _DIRECTIVE.match(token.string):
                found.unknown_directives.append((token.start[0], token.string.strip()))
                continue
            noqa = _NOQA.search(token.string)
            if noqa:
                line = token.start[0]
                codes = noqa.group("codes")
                if codes is None:
                    found.lines[line] = None
                else:
                    found.mentioned.extend((line, code, "# noqa") for code in sorted(_split(codes)))
                    if found.lines.get(line, set()) is not None:
                        found.lines[line] = found.lines.get(line, set()) | _split(codes)
        return found

    def unknown_codes(self, known: set[str]) -> list[tuple[int, str, str]]:
        """(line, code, directive) for each mlplint-style code (ML...) that names no rule or
        symptom; codes of other tools (`# noqa: E501`) are theirs and are left alone."""
        return [(line, code, directive) for line, code, directive in self.mentioned
                if code.startswith("ML") and code not in known]

    def suppresses(self, code: str, line: int, end_line: int) -> bool:
        if self.whole_file or code in self.file_codes:
            return True
        for candidate in {line, end_line}:
            if candidate in self.lines:
                codes = self.lines[candidate]
                if codes is None or code in codes:
                    return True
        return False
