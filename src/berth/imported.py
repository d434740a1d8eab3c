"""Types of a library looked up only if something already imported it, without importing it.

A value of pandas' (a DataFrame, ``pd.NA``) cannot exist before pandas is imported, so code that only needs to
recognise such values asks here instead of paying for the import. The attribute is read with ``getattr``: a
module another thread is still importing sits in ``sys.modules`` half built, and its missing attribute means
that no value of that type can have been made yet.
"""

from __future__ import annotations

import sys
from typing import Any


def imported_attribute(module: str, name: str) -> Any:
    """``module.name`` if ``module`` is (being) imported and already defines it, else None."""
    return getattr(sys.modules.get(module), name, None)
