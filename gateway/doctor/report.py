"""Findings and how they are printed.

A finding is one check's verdict: PASS, WARN or FAIL (or INFO: a fact reported, not judged),
what was found, and for a WARN or FAIL the fix. A fix may come with a `command` (an argv that
applies it, e.g. `aws cognito-idp update-user-pool-client ...`) and a `policy` (a ready-to-paste
IAM policy document); both are printed verbatim, never re-wrapped. The report prints one block
per finding and a summary line; the exit code is 1 when any finding failed, else 0. Nothing
printed ever includes the client secret: findings are built from settings and IdP answers only
through the doctor's checks, which never quote it.
"""

from __future__ import annotations

import enum
import shlex
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

WIDTH = 100
_NAME_COLUMN = 18


class Status(enum.Enum):
    """A finding's verdict; FAIL makes `doctor` exit 1."""

    PASS = "PASS"  # noqa: S105 - a verdict, not a password
    WARN = "WARN"
    FAIL = "FAIL"
    INFO = "INFO"


@dataclass(frozen=True)
class Finding:
    """One check's verdict: `check` names it, `detail` says what was found, `fix` what to do.

    `command` is an argv that applies the fix (printed shell-quoted), `policy` an IAM policy
    document (JSON text) to grant; both are empty when there is none.
    """

    check: str
    status: Status
    detail: str
    fix: str = ""
    command: tuple[str, ...] = ()
    policy: str = ""

    @property
    def command_line(self) -> str:
        """`command` as one shell-quoted line ("" when there is none)."""
        return shlex.join(self.command) if self.command else ""

    @classmethod
    def ok(cls, check: str, detail: str) -> Finding:
        return cls(check, Status.PASS, detail)

    @classmethod
    def warn(cls, check: str, detail: str, fix: str) -> Finding:
        return cls(check, Status.WARN, detail, fix)

    @classmethod
    def fail(cls, check: str, detail: str, fix: str) -> Finding:
        return cls(check, Status.FAIL, detail, fix)

    @classmethod
    def info(cls, check: str, detail: str) -> Finding:
        return cls(check, Status.INFO, detail)


def _block(label: str, text: str, indent: str) -> list[str]:
    return _wrap(text, initial_indent=indent + label,
                 subsequent_indent=indent + " " * len(label)) or [indent + label]


def _wrap(text: str, *, initial_indent: str, subsequent_indent: str) -> list[str]:
    # URLs and ids are never split (a broken URL cannot be pasted).
    return textwrap.wrap(text, WIDTH, initial_indent=initial_indent,
                         subsequent_indent=subsequent_indent, break_on_hyphens=False,
                         break_long_words=False)


def _command_lines(argv: tuple[str, ...], indent: str) -> list[str]:
    """The command shell-quoted, one option (with its values) per continued line."""
    groups: list[list[str]] = [[]]
    for arg in argv:
        if arg.startswith("--"):
            groups.append([])
        groups[-1].append(shlex.quote(arg))
    lines = [" ".join(group) for group in groups if group]
    label = indent + "run: "
    pad = " " * len(label) + "  "
    return [(label if i == 0 else pad) + line + (" \\" if i < len(lines) - 1 else "")
            for i, line in enumerate(lines)]


def render(findings: Sequence[Finding]) -> str:
    """The findings as text: `STATUS  check  detail`, then `fix:` lines, then a summary."""
    lines: list[str] = []
    indent = " " * 6
    for f in findings:
        head = f"{f.status.value}  {f.check.ljust(_NAME_COLUMN - 1)} "
        lines.extend(_wrap(f.detail, initial_indent=head,
                           subsequent_indent=" " * len(head)) or [head])
        if f.fix and f.status in {Status.WARN, Status.FAIL}:
            lines.extend(_block("fix: ", f.fix, indent))
        if f.command:
            lines.extend(_command_lines(f.command, indent))
        if f.policy:
            lines.append(indent + "policy:")
            lines.extend(indent + "  " + line for line in f.policy.splitlines())
    lines.append("")
    lines.append(summary(findings))
    return "\n".join(lines) + "\n"


def summary(findings: Sequence[Finding]) -> str:
    """`1 failed, 0 warning(s), 12 passed` (and `, 2 info` when there are INFO findings)."""
    counts = {s: sum(1 for f in findings if f.status is s) for s in Status}
    text = (f"{counts[Status.FAIL]} failed, {counts[Status.WARN]} warning(s), "
            f"{counts[Status.PASS]} passed")
    return text + (f", {counts[Status.INFO]} info" if counts[Status.INFO] else "")


def exit_code(findings: Sequence[Finding]) -> int:
    """1 when any finding failed, else 0 (warnings do not fail the doctor)."""
    return 1 if any(f.status is Status.FAIL for f in findings) else 0
