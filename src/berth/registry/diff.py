"""Two versions of a model side by side: metrics, params, signature, library versions, lineage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from berth.registry.store import Registry

Sections = dict[str, dict[str, list[Any]]]


def diff_versions(registry: Registry, name: str, first: int, second: int) -> Sections:
    """``{section: {key: [value in first, value in second]}}``; a key missing from one version has None there."""
    versions = [registry.get_version(name, number) for number in (first, second)]
    manifests = [registry.manifest(name, number) for number in (first, second)]
    sections: Sections = {}
    sections["version"] = pair([{
        "digest": v.digest, "flavor": v.flavor, "format": v.format, "size": v.size, "created_at": v.created_at
        .isoformat(), "created_by": f"{v.created_by}@{v.created_host}", "description": v.description,
        "git_commit": v.git_commit, "data_fingerprint": v.data_fingerprint, "python": m.get("python"),
    } for v, m in zip(versions, manifests, strict=True)])
    sections["metrics"] = pair([v.metrics for v in versions])
    sections["params"] = pair([v.params for v in versions])
    sections["signature"] = pair([signature_view(m.get("signature")) for m in manifests])
    sections["libraries"] = pair([m.get("libraries") or {} for m in manifests])
    sections["tags"] = pair([v.tags for v in versions])
    return {section: rows for section, rows in sections.items() if rows}


def pair(sides: list[dict[str, Any]]) -> dict[str, list[Any]]:
    keys = list(dict.fromkeys([*sides[0], *sides[1]]))
    return {key: [sides[0].get(key), sides[1].get(key)] for key in keys}


def signature_view(signature: dict[str, Any] | None) -> dict[str, Any]:
    """A signature flattened to comparable entries: layout, each input column's type, the outputs."""
    if not signature:
        return {}
    view: dict[str, Any] = {"layout": signature.get("layout")}
    for column in signature.get("columns") or []:
        described = column.get("dtype", "?") + (", nullable" if column.get("nullable") else "")
        view[f"input {column.get('name')}"] = described
    tensor = signature.get("tensor")
    if tensor:
        view["input tensor"] = f"{tensor.get('dtype')} {tensor.get('shape')}"
    outputs = signature.get("outputs") or {}
    for key in ("kind", "dtype", "shape", "classes", "probabilities"):
        if key in outputs:
            view[f"output {key}"] = outputs[key]
    return view
