"""Import ``skops.io`` without scikit-learn's estimator discovery importing packages it then ignores.

When ``skops.io`` is imported it builds its list of trusted types, and part of that list is every estimator
``sklearn.utils.all_estimators()`` finds. That function walks scikit-learn with ``pkgutil.walk_packages``, which
imports every *package* it passes, including the ones whose modules ``all_estimators`` then skips: the
``tests`` packages and ``sklearn.externals``, whose ``array_api_compat.torch`` and ``array_api_compat.dask``
import torch and dask when they are installed. In a development environment that was over half of the 2.4 s of
``import skops.io``; torch alone took 1.1 s.

:func:`import_skops_io` imports ``skops.io`` while ``sklearn.utils.all_estimators`` is :func:`pruned_estimators`,
which walks the same packages but does not descend into a package that ``all_estimators`` ignores. The result is
the same list: ``all_estimators`` keeps a module only when no part of its name is in ``_MODULE_TO_IGNORE`` and
the name has no ``._``; both rules also hold for every package above a kept module, so the pruned walk reaches
every module that ``all_estimators`` reads, imports each the same way, and collects its classes with the same
filter (public names, subclasses of ``BaseEstimator``, not abstract). skops' trusted-type list, and so what a
skops file may hold without trust, is unchanged.

The equivalence is argued from the source of ``sklearn/utils/discovery.py``, so the pruned walk is used only for
a file whose sha256 is in :data:`VERIFIED_DISCOVERY`; any other scikit-learn (or one installed oddly) imports
skops the ordinary way. ``tests/flavors/test_skops_import.py`` compares both lists on the installed version and
fails when its ``discovery.py`` is not verified yet: check the function again and add the hash.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import pkgutil
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from types import ModuleType
from typing import Any

# sha256 of sklearn/utils/discovery.py for the releases whose all_estimators was checked against the argument
# in the docstring (and whose lists the test compared)
VERIFIED_DISCOVERY = frozenset({
    "269095f25232b9622b30fa7cf0e874988df5b0fc9cfe49b3576d17601a0459ad",  # scikit-learn 1.9.1
})
_LOCK = threading.Lock()


def import_skops_io() -> ModuleType:
    """``skops.io``, imported with the pruned discovery when scikit-learn's is a verified one."""
    if "skops.io" in sys.modules:
        # imported (or being imported by another thread): import_module waits for a module still initialising,
        # where the sys.modules entry alone could be half built
        return importlib.import_module("skops.io")
    with _LOCK:
        if "skops.io" in sys.modules:  # another thread imported it while this one waited for the lock
            return importlib.import_module("skops.io")
        import sklearn.utils

        discovery = sys.modules.get("sklearn.utils.discovery")
        original = getattr(sklearn.utils, "all_estimators", None)
        if discovery is None or original is None or not is_verified(discovery):
            return importlib.import_module("skops.io")
        sklearn.utils.all_estimators = pruned_estimators
        try:
            return importlib.import_module("skops.io")
        finally:
            sklearn.utils.all_estimators = original


def is_verified(discovery: ModuleType) -> bool:
    """Whether ``discovery`` (``sklearn.utils.discovery``) is a file the pruned walk was checked against."""
    path = getattr(discovery, "__file__", None)
    if not path or not hasattr(discovery, "_MODULE_TO_IGNORE"):
        return False
    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return False
    return digest in VERIFIED_DISCOVERY


def pruned_estimators(type_filter: Any = None) -> list[tuple[str, type]]:
    """``sklearn.utils.all_estimators()`` without importing the packages it ignores (see the module docstring).

    Only the call skops makes (no ``type_filter``) is answered here; any other goes to scikit-learn's own.
    """
    from sklearn.utils import discovery

    if type_filter is not None:
        return discovery.all_estimators(type_filter)
    from sklearn.base import BaseEstimator

    ignored = frozenset(discovery._MODULE_TO_IGNORE)
    sklearn = sys.modules["sklearn"]
    found: set[tuple[str, type]] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # as all_estimators does while it imports and walks
        for name in _kept_modules(list(sklearn.__path__), "sklearn.", ignored):
            module = importlib.import_module(name)
            found.update((member, cls) for member, cls in inspect.getmembers(module, inspect.isclass)
                         if not member.startswith("_"))
    estimators = [(name, cls) for name, cls in found
                  if issubclass(cls, BaseEstimator) and name != "BaseEstimator" and not _is_abstract(cls)]
    return sorted(set(estimators), key=itemgetter(0))


def _kept_modules(path: Sequence[str], prefix: str, ignored: frozenset[str]) -> Iterator[str]:
    """The modules under ``path`` that all_estimators reads, in walk_packages' order; the caller imports each
    before the walk goes into it (as all_estimators imports what walk_packages yields)."""
    for info in pkgutil.iter_modules(path, prefix):
        if "._" in info.name or any(part in ignored for part in info.name.split(".")):
            continue  # and so is everything inside it: its names share the part or the "._"
        yield info.name
        if info.ispkg:
            inner = getattr(sys.modules[info.name], "__path__", None) or []
            yield from _kept_modules(list(inner), info.name + ".", ignored)


def _is_abstract(cls: type) -> bool:
    return bool(getattr(cls, "__abstractmethods__", None))
