"""Render a kustomization the way kustomize does, for the features deploy/kubernetes uses.

kubectl and kustomize are not installed on the test machines, and the one pip package that
binds kustomize needs Python 3.14, so the tests render the overlays themselves. Only these
features are supported, each exactly as kustomize defines it:

- `resources`: YAML files (one or more documents) and directories holding a
  kustomization.yaml, rendered recursively;
- `patches` whose patch (inline `patch` or a `path`) is a JSON 6902 operation list (RFC 6902:
  add, remove, replace, test), applied to the resources its `target` selects by group,
  version, kind and name;
- `labels` with `pairs`, `includeSelectors: false` and no `includeTemplates`: the pairs are
  added to each resource's metadata.labels only;
- `images`: `name` with `newName` and/or `newTag`, applied to every container and init
  container image of that name.

Transformers run in kustomize's built-in order: patches, then labels, then images. Any other
kustomization key, or an unsupported form of one of these, raises `UnsupportedKustomization`,
so an overlay can never render differently here than under `kubectl apply -k` without a test
failing first.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

__all__ = ["UnsupportedKustomization", "apply_json6902", "kustomization_files", "render"]

Resource = dict[str, Any]
_SUPPORTED = {"apiVersion", "kind", "resources", "patches", "labels", "images"}


class UnsupportedKustomization(ValueError):
    """The kustomization uses a feature this renderer does not reproduce faithfully."""


def render(directory: Path) -> list[Resource]:
    """The resources `kubectl apply -k directory` would apply, in resource order."""
    kustomization = _load_kustomization(directory)
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_dir():
            resources += render(path)
        elif path.is_file():
            resources += _documents(path)
        else:
            raise FileNotFoundError(f"{directory}: resource {entry} does not exist")
    for patch in kustomization.get("patches", []):
        _apply_patch(directory, patch, resources)
    for label in kustomization.get("labels", []):
        _apply_labels(label, resources)
    for image in kustomization.get("images", []):
        _apply_image(image, resources)
    return resources


def kustomization_files(directory: Path) -> set[str]:
    """The files a kustomization names directly: its resources (files only) and patch paths."""
    kustomization = _load_kustomization(directory)
    names = {r for r in kustomization.get("resources", []) if (directory / r).is_file()}
    names |= {p["path"] for p in kustomization.get("patches", []) if "path" in p}
    return names


def _load_kustomization(directory: Path) -> dict[str, Any]:
    data = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise UnsupportedKustomization(f"{directory}: kustomization.yaml is not a mapping")
    unknown = set(data) - _SUPPORTED
    if unknown:
        raise UnsupportedKustomization(f"{directory}: unsupported keys {sorted(unknown)}")
    return data


def _documents(path: Path) -> list[Resource]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _apply_patch(directory: Path, spec: Mapping[str, Any], resources: list[Resource]) -> None:
    if set(spec) - {"path", "patch", "target"} or "target" not in spec:
        raise UnsupportedKustomization(f"{directory}: patches need a target and path or patch")
    text = (directory / spec["path"]).read_text(encoding="utf-8") if "path" in spec else (
        spec["patch"])
    operations = yaml.safe_load(text)
    if not isinstance(operations, list):
        raise UnsupportedKustomization(f"{directory}: only JSON 6902 patches are supported")
    target = spec["target"]
    if set(target) - {"group", "version", "kind", "name"}:
        raise UnsupportedKustomization(f"{directory}: target selects by {sorted(target)}")
    matched = [i for i, r in enumerate(resources) if _selected(r, target)]
    if not matched:
        raise ValueError(f"{directory}: patch target {target} matches no resource")
    for i in matched:
        resources[i] = apply_json6902(resources[i], operations)


def _selected(resource: Mapping[str, Any], target: Mapping[str, str]) -> bool:
    group, _, version = resource["apiVersion"].rpartition("/")
    actual = {"group": group, "version": version, "kind": resource["kind"],
              "name": resource["metadata"]["name"]}
    return all(actual[key] == value for key, value in target.items())


def apply_json6902(document: Any, operations: Sequence[Mapping[str, Any]]) -> Any:
    """A copy of `document` with the RFC 6902 operations applied in order; errors raise."""
    result = copy.deepcopy(document)
    for operation in operations:
        op, tokens = operation["op"], _pointer(operation["path"])
        parent, last = _parent(result, tokens)
        if op == "add":
            value = copy.deepcopy(operation["value"])
            if isinstance(parent, list):
                index = len(parent) if last == "-" else _index(parent, last, inclusive=True)
                parent.insert(index, value)
            else:
                parent[last] = value
        elif op in {"replace", "remove", "test"}:
            key: int | str = _index(parent, last) if isinstance(parent, list) else last
            if isinstance(parent, dict) and key not in parent:
                raise KeyError(f"{operation['path']}: no such member")
            if op == "replace":
                parent[key] = copy.deepcopy(operation["value"])
            elif op == "remove":
                del parent[key]
            elif parent[key] != operation["value"]:
                raise ValueError(f"{operation['path']}: test failed")
        else:
            raise UnsupportedKustomization(f"JSON 6902 op {op!r} is not supported")
    return result


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"{path!r} is not a JSON pointer")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _parent(document: Any, tokens: list[str]) -> tuple[Any, str]:
    node = document
    for token in tokens[:-1]:
        node = node[_index(node, token)] if isinstance(node, list) else node[token]
    return node, tokens[-1]


def _index(items: list[Any], token: str, *, inclusive: bool = False) -> int:
    if not token.isdigit() or int(token) > len(items) - (0 if inclusive else 1):
        raise IndexError(f"{token!r} is not an index of a list of {len(items)}")
    return int(token)


def _apply_labels(spec: Mapping[str, Any], resources: list[Resource]) -> None:
    if set(spec) - {"pairs", "includeSelectors"} or spec.get("includeSelectors", False):
        raise UnsupportedKustomization("labels: only pairs with includeSelectors: false")
    for resource in resources:
        resource["metadata"].setdefault("labels", {}).update(spec["pairs"])


def _apply_image(spec: Mapping[str, str], resources: list[Resource]) -> None:
    if set(spec) - {"name", "newName", "newTag"}:
        raise UnsupportedKustomization(f"images: unsupported fields in {sorted(spec)}")

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in {"containers", "initContainers"} and isinstance(value, list):
                    for container in value:
                        container["image"] = _retagged(container["image"], spec)
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    for resource in resources:
        visit(resource)


def _retagged(image: str, spec: Mapping[str, str]) -> str:
    name, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:  # no tag; the colon was a registry's port
        name, tag = image, ""
    if "@" in image or name != spec["name"]:
        return image
    name = spec.get("newName", name)
    tag = spec.get("newTag", tag)
    return f"{name}:{tag}" if tag else name
