"""The course's exercises, one module per lab (``lab01.py`` ... ``lab07.py``).

Each module registers its exercises with ``labkit.checks.register`` when imported.
``labkit.checks`` imports this package on the first lookup of an unknown exercise id, which
imports every lab module found here.
"""

from __future__ import annotations

import importlib
import pkgutil

LAB_MODULES = sorted(
    m.name
    for m in pkgutil.iter_modules(__path__)
    if m.name.startswith("lab") and m.name[3:].isdigit()
)

for _name in LAB_MODULES:
    importlib.import_module(f"{__name__}.{_name}")
