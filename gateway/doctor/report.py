"""Findings and how they are printed.

A finding is one check's verdict: PASS, WARN or FAIL, what was found, and for anything but a
PASS the fix. The report prints one block per finding and a summary line; the exit code is 1
when any finding failed, else 0. Nothing printed ever includes the client secret: findings are
built from settings and IdP answers only through the doctor's checks, which never quote it.
"""

from __future__ import annotations

import enum
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 100
_NAME_COLUMN = 18


class Status(enum.Enum):
    PASS = "PASS"  # noqa: S105 - a verdict, not a password
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    """One check's verdict: `check` names it, `detail` says what was found, `fix` what to do."""

    check: str
    status: Status
    detail: str
    fix: str = ""

    @classmethod
    def ok(cls, check: str, detail: str) -> Finding:
        return cls(check, Status.PASS, detail)

    @classmethod
    def warn(cls, check: str, detail: str, fix: str) -> Finding:
        return cls(check, Status.WARN, detail, fix)

    @classmethod
    def fail(cls, check: str, detail: str, fix: str) -> Finding:
        return cls(check, Status.FAIL, detail, fix)


def _block(label: str, text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent + label,
                         subsequent_indent=indent + " " * len(label)) or [indent + label]


def render(findings: Sequence[Finding]) -> str:
    """The findings as text: `STATUS  check  detail`, then `fix:` lines, then a summary."""
    lines: list[str] = []
    indent = " " * 6
    for f in findings:
        head = f"{f.status.value}  {f.check.ljust(_NAME_COLUMN)}"
        lines.extend(textwrap.wrap(f.detail, WIDTH, initial_indent=head,
                                   subsequent_indent=" " * len(head)) or [head])
        if f.fix and f.status is not Status.PASS:
            lines.extend(_block("fix: ", f.fix, indent))
    counts = {s: sum(1 for f in findings if f.status is s) for s in Status}
    lines.append("")
    lines.append(f"{counts[Status.FAIL]} failed, {counts[Status.WARN]} warning(s), "
                 f"{counts[Status.PASS]} passed")
    return "\n".join(lines) + "\n"


def exit_code(findings: Sequence[Finding]) -> int:
    """1 when any finding failed, else 0 (warnings do not fail the doctor)."""
    return 1 if any(f.status is Status.FAIL for f in findings) else 0
