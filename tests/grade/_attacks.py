"""Attacks shared by the grader's trust tests (issue 24): code a student could submit."""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path

# Exercise cells run only definitions (imports, def, class, assignments to names): each
# attack is a function, run by an assignment (`_ = attack()`), as a student would write it.
# ---- 1. every file the dice exercise's process can open, and every labkit it can import
WALK = """\
import hashlib, os, stat, sys

def _walk(sizes, digests, texts):
    found, files, packages = [], 0, []
    for root, dirs, names in os.walk("/"):
        if root == "/":
            dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]
        for name in names:
            path = os.path.join(root, name)
            try:
                info = os.lstat(path)
                if not stat.S_ISREG(info.st_mode):
                    continue
                files += 1
                if path.endswith("labkit/__init__.py"):
                    with open(path, encoding="utf-8", errors="ignore") as f:
                        if "raise ImportError" not in f.read():  # a package, not a blocker
                            packages.append(path)
                if info.st_size in sizes:
                    with open(path, "rb") as f:
                        if hashlib.sha256(f.read()).hexdigest() in digests:
                            found.append(path)
                if name.endswith((".py", ".ipynb", ".txt", ".md", ".json")) and info.st_size < 2e6:
                    with open(path, encoding="utf-8", errors="ignore") as f:
                        text = f.read()
                    if any(t in text for t in texts):
                        found.append(path)
            except OSError:
                pass
    saved_path, saved_modules = list(sys.path), dict(sys.modules)
    sys.path[:] = [p for p in sys.path if "/sandbox/lib" not in p]
    for name in [n for n in sys.modules if n.split(".")[0] in ("labkit", "demo_exercises")]:
        del sys.modules[name]
    try:
        import labkit
        elsewhere = str(list(labkit.__path__))
    except ImportError:
        elsewhere = "none"
    sys.path[:] = saved_path
    sys.modules.clear()
    sys.modules.update(saved_modules)
    return f"WALK files={{files}} found={{sorted(set(found))}} packages={{packages}} elsewhere={{elsewhere}}"

_RESULT = _walk({sizes!r}, {digests!r}, {texts!r})

def dice(pred, truth):
    raise RuntimeError(_RESULT)
"""


def fingerprints() -> tuple[set[int], set[str], list[str]]:
    """Sizes and digests of the original files holding dice's reference, and its body."""
    import demo_exercises

    original = Path(demo_exercises.__file__)
    source = inspect.getsource(demo_exercises.dice)
    body = source.split('"""', 2)[-1].strip()  # what the stub replaces
    data = original.read_bytes()
    return {len(data)}, {hashlib.sha256(data).hexdigest()}, [body]
