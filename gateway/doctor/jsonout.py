"""`doctor --json`: the findings as one JSON document, for CI steps that gate a deploy on it.

```json
{"source": "gateway.toml", "exit_code": 1,
 "summary": {"failed": 1, "warnings": 0, "passed": 14, "info": 2},
 "findings": [{"check": "callback URLs", "status": "FAIL", "message": "...", "fix": "...",
               "command": "aws cognito-idp update-user-pool-client ...", "argv": ["aws", ...],
               "policy": null}, ...]}
```

Every finding has every key: `fix`, `command` and `argv` are null when there is none,
`policy` is the IAM policy document (an object) or null. The exit code is the process's:
0 nothing failed, 1 a check failed, 2 the configuration is invalid.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from gateway.doctor.report import Finding, Status

if TYPE_CHECKING:
    from collections.abc import Sequence


def finding_document(finding: Finding) -> dict[str, Any]:
    """One finding as a JSON object."""
    return {
        "check": finding.check,
        "status": finding.status.value,
        "message": finding.detail,
        "fix": finding.fix or None,
        "command": finding.command_line or None,
        "argv": list(finding.command) or None,
        "policy": json.loads(finding.policy) if finding.policy else None,
    }


def render_json(findings: Sequence[Finding], *, source: str, exit_code: int) -> str:
    """The report as one JSON document (and a newline)."""
    count = {s: sum(1 for f in findings if f.status is s) for s in Status}
    document = {
        "source": source,
        "exit_code": exit_code,
        "summary": {"failed": count[Status.FAIL], "warnings": count[Status.WARN],
                    "passed": count[Status.PASS], "info": count[Status.INFO]},
        "findings": [finding_document(f) for f in findings],
    }
    return json.dumps(document, indent=2) + "\n"
