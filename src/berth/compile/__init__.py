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

TWIN_FILE = "compiled/model.onnx"
RUNTIME = "onnxruntime"
