"""Compiled twins: the same model for a fast runtime (ONNX through onnxruntime), used only when proven equivalent.

``berth.save(..., compile=True)`` (the default) converts a scikit-learn model (or a LightGBM / XGBoost model,
when onnxmltools is installed) to ONNX, runs the original and the converted model on the sample plus a few
thousand rows synthesised from the reference statistics, and writes ``compiled/model.onnx`` only when every
answer agrees within the stated tolerance. The manifest's ``compiled`` section holds the proof, or why there is
no twin (``{"refused": ...}``). ``berth.load(..., compiled=True)`` then predicts with the twin and never loads
the original payload.

One job per module: :mod:`.convert` (model to ONNX), :mod:`.synth` (the rows of the proof), :mod:`.proof`
(compare), :mod:`.build` (all of it at save time), :mod:`.twin` (the runtime side: onnxruntime and numpy only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from berth.manifest import Manifest

TWIN_FILE = "compiled/model.onnx"
RUNTIME = "onnxruntime"


def proven(manifest: Manifest) -> bool:
    """Whether the manifest carries a proven twin (a refusal, or no section, is not one)."""
    section = manifest.compiled
    return section is not None and "refused" not in section and section.get("file") == TWIN_FILE


def describe(manifest: Manifest) -> str:
    """One line for logs and ``berth inspect``: the proof's size and worst difference, or the refusal."""
    section = manifest.compiled
    if not section:
        return "none"
    if "refused" in section:
        return f"refused: {section['refused']}"
    worst = section.get("worst_abs_diff") or {}
    shown = ", ".join(f"{k} {v:.3g}" if isinstance(v, int | float) else f"{k} ?" for k, v in worst.items())
    return f"{section['runtime']} (proof: {section['rows_tried']} rows, worst diff {shown or 'n/a'})"
