"""The configuration reference, rendered from the settings classes so that it cannot drift.

`render()` returns Markdown listing every key of every section with its type, default,
environment variable, whether it is a secret, and its description (the field's `doc`).
`docs/configuration.md` is its output, committed:

    python -m gateway.config_reference > docs/configuration.md
    python -m gateway.config_reference --check docs/configuration.md   # exit 1 when stale
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path
from typing import Any

from gateway.auth.rules import REFERENCE, Rule
from gateway.config import ENV_PREFIX, SECTIONS

if typing.TYPE_CHECKING:
    from collections.abc import Sequence

REGENERATE = "python -m gateway.config_reference > docs/configuration.md"


@dataclasses.dataclass(frozen=True)
class Key:
    """One setting as the reference shows it."""

    section: str
    name: str
    type: str
    default: str
    env: str
    secret: bool
    doc: str

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"


def keys() -> list[Key]:
    """Every setting, section by section, in declaration order."""
    found = []
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            found.append(Key(
                section=section, name=f.name, type=_type_name(hints[f.name]),
                default=_toml_value(_default(f)), env=f"{ENV_PREFIX}{section}_{f.name}".upper(),
                secret=bool(f.metadata["secret"]), doc=str(f.metadata["doc"])))
    return found


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _type_name(hint: Any) -> str:
    if hint == list[Rule]:
        return "array of tables"
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return f"list of {_type_name(item)}"
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    """The whole reference as Markdown."""
    lines = [
        "# Configuration reference",
        "",
        f"<!-- Generated from gateway/config.py; do not edit. Regenerate: {REGENERATE} -->",
        "",
        "The gateway reads a TOML file (`cognito-gateway run --config FILE`) and the environment;",
        "the environment wins. Each key `<section>.<key>` is also read from",
        f"`{ENV_PREFIX}<SECTION>_<KEY>` in upper case. Every problem (unknown key, unknown",
        f"`{ENV_PREFIX}*` variable of a known section, wrong type, invalid value, missing required",
        "key) is reported at once, by key, and the command exits 2 before anything starts.",
        "",
        "Values from the environment are text: booleans are `true`/`false` (also `1`/`0`,",
        "`yes`/`no`, `on`/`off`), numbers are written as in TOML, and lists are either",
        'comma-separated (`openid,email`) or a JSON array (`["openid", "email"]`).',
        "",
        "Secrets (marked below) may also be read from a file: `<key>_file = \"/path\"` in the",
        f"TOML section, or `{ENV_PREFIX}<SECTION>_<KEY>_FILE=/path` in the environment. The file's",
        "content, stripped of surrounding whitespace, is read like an environment value (so a",
        "list of session keys is comma-separated). Precedence, first found wins:",
        f"`{ENV_PREFIX}<SECTION>_<KEY>`, `{ENV_PREFIX}<SECTION>_<KEY>_FILE`, `<key>_file` in the",
        "TOML file, `<key>` in the TOML file, the default.",
        "",
    ]
    by_section: dict[str, list[Key]] = {}
    for key in keys():
        by_section.setdefault(key.section, []).append(key)
    for section, section_keys in by_section.items():
        lines += [f"## [{section}]", "",
                  "| key | type | default | environment variable | secret | description |",
                  "|---|---|---|---|---|---|"]
        for key in section_keys:
            env = f"`{key.env}`"
            if key.secret:
                env += f"<br>`{key.env}_FILE`"
            name = f"`{key.name}`" + (f"<br>`{key.name}_file`" if key.secret else "")
            lines.append(
                f"| {name} | {key.type} | `{_cell(key.default)}` | {env} | "
                f"{'yes' if key.secret else 'no'} | {_cell(key.doc)} |")
        lines.append("")
        if section == "auth":
            lines += _rule_keys()
    return "\n".join(lines)


def _rule_keys() -> list[str]:
    """The keys of one `[[auth.rules]]` table."""
    lines = ["### [[auth.rules]]", "",
             "Each rule is a table of these keys (in `GATEWAY_AUTH_RULES`, a JSON object). "
             "Requirements, `unauthenticated` and `identity_provider` belong to "
             '`action = "authenticate"` rules only.', "",
             "| key | type | default | description |", "|---|---|---|---|"]
    lines += [f"| `{key}` | {kind} | `{_cell(default)}` | {_cell(doc)} |"
              for key, kind, default, doc in REFERENCE]
    lines.append("")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Print the reference, or with --check exit 1 when FILE differs from it."""
    parser = argparse.ArgumentParser(
        prog="python -m gateway.config_reference",
        description="Print the configuration reference (Markdown), or check a committed copy.")
    parser.add_argument("--check", type=Path, metavar="FILE",
                        help="exit 1 when FILE differs from the generated reference")
    args = parser.parse_args(argv)
    text = render()
    if args.check is None:
        sys.stdout.write(text)
        return 0
    try:
        current = args.check.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"{args.check}: cannot read: {exc.strerror}", file=sys.stderr)
        return 1
    if current != text:
        print(f"{args.check} is out of date; regenerate it: {REGENERATE}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
