"""``berth compile``: a new bundle that is an existing one plus a compiled twin (bundles are immutable).

The source bundle is opened and verified, its original model loaded (``trust`` as for loading), and the twin
proven on the signature's example rows plus rows synthesised from the manifest's reference statistics. Only a
proven twin makes a new bundle: its files are the source's (copied, hashes unchanged) plus
``compiled/model.onnx``; its lineage names the source's content digest. A refusal raises
:class:`~berth.errors.FlavorError` with the reason, and nothing is written.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterable
from typing import TYPE_CHECKING

from berth import storage
from berth.compile import TWIN_FILE
from berth.errors import BundleError, FlavorError
from berth.manifest import MANIFEST_NAME, Manifest, hash_files

if TYPE_CHECKING:
    from berth.registry.store import Registry


def compile_bundle(uri: str | os.PathLike[str], output: str | os.PathLike[str], *, trust: bool = False,
                   trusted_types: Iterable[str] = (), overwrite: bool = False,
                   registry: Registry | None = None) -> Manifest:
    """Write ``output``: the bundle at ``uri`` with a proven compiled twin; raises FlavorError if refused."""
    from berth.compile.build import compile_into
    from berth.model import load_bundle
    from berth.registry.default import registry_for
    from berth.source import open_bundle

    if storage.exists(storage.join(str(output), MANIFEST_NAME)) and not overwrite:
        raise BundleError(f"{output} already holds a bundle; pass overwrite=True (--overwrite) to replace it")
    with open_bundle(uri, registry=registry_for([str(uri)], registry)) as bundle:
        source = bundle.manifest
        model = load_bundle(bundle, trust=trust, trusted_types=list(trusted_types), compiled=False)
        estimator = getattr(model.predictor, "estimator", None)
        if estimator is None:
            raise FlavorError(f"cannot compile {uri}: berth compile converts scikit-learn bundles (this one is "
                              f"{source.flavor}); save the model again with compile=True instead")
        signature = source.signature
        with storage.staging_directory(output) as staged:
            kept = [entry for entry in source.files if not entry.path.startswith("compiled/")]
            for entry in kept:
                target = staged / entry.path
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(bundle.directory / entry.path, target)
            sample = signature.example if signature is not None and signature.example else None
            section = compile_into(staged, estimator, source.flavor, model.predictor, signature, source.reference,
                                   sample)
            if section is None or "refused" in section:
                reason = section["refused"] if section else f"the {source.flavor} flavor has no compiler"
                raise FlavorError(f"cannot compile {uri}: {reason}")
            lineage = {**source.lineage, "compiled_from": source.content_digest}
            manifest = dataclasses.replace(source, files=[*kept, *hash_files(staged, [TWIN_FILE])], compiled=section,
                                           lineage=lineage)
            (staged / MANIFEST_NAME).write_text(manifest.check().to_json())
            storage.publish(staged, output, MANIFEST_NAME, overwrite=overwrite)
    return manifest
