"""The Colab side of the generated notebooks: the course's address, its badges, the install cell.

The address is configuration in one place, the course's ``pyproject.toml``, which the
instructor edits once after forking (README, "Publish your course")::

    [tool.labkit]
    repository = "https://github.com/OWNER/REPO"   # the public GitHub repository
    branch = "main"                                 # the branch the badges open

``labkit build`` reads it (``find_config``) and writes it into every student notebook's
"Open in Colab" badge and install cell.

The install cell (``install_cell_source``) is plain Python, so ``make colab-check`` can run
exactly what students run. On Colab it installs labkit without replacing what Colab
preinstalled:

* pins: every package in ``KEEP`` that is installed is pinned to its *distribution* version
  from ``importlib.metadata`` (``2.11.0+cu128``), never to ``torch.__version__``, which may
  carry a local label that the metadata lacks (PyPI's torch 2.14.1 reports ``2.14.1+cu130``
  and pip then finds no ``torch==2.14.1+cu130``);
* check: it compares every installed distribution's version before and after pip, and stops
  with "restart" instructions when pip replaced one (a module already imported in this kernel
  would otherwise be the old one);
* two routes: a ``labkit-*.whl`` uploaded next to the notebook (Colab's file panel, the
  session's working folder ``/content``) or to Drive's ``MyDrive`` is installed first;
  otherwise ``labkit @ git+REPOSITORY@BRANCH``.

Outside Colab (no ``COLAB_RELEASE_TAG``) the cell does nothing. This module imports no torch.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

CONFIG_FILE = "pyproject.toml"
CONFIG_TABLE = "tool.labkit"
# Colab's own packages that labkit must never replace (pinned to what is installed).
KEEP = ("torch", "torchvision", "numpy", "pillow", "ipywidgets")
# Where the install cell looks for an uploaded wheel: the session's folder, then Drive.
WHEEL_GLOBS = ("labkit-*.whl", "/content/drive/MyDrive/labkit-*.whl")
_GITHUB = re.compile(r"^https://github\.com/(?P<path>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?)(\.git)?/?$")


@dataclass(frozen=True)
class CourseConfig:
    """Where the course is published.

    Attributes:
        repository: the public GitHub repository, ``https://github.com/OWNER/REPO``.
        branch: the branch the badges open and the install cell installs from.
        source: the ``pyproject.toml`` it was read from (None when made in code).
    """

    repository: str
    branch: str = "main"
    source: Path | None = None

    def __post_init__(self) -> None:
        where = f" ({self.source}, [{CONFIG_TABLE}])" if self.source else ""
        if not isinstance(self.repository, str) or not _GITHUB.match(self.repository):
            raise ValueError(
                f"repository{where} must look like 'https://github.com/OWNER/REPO', "
                f"got {self.repository!r}"
            )
        if not isinstance(self.branch, str) or not re.fullmatch(r"[A-Za-z0-9_./-]+", self.branch):
            raise ValueError(f"branch{where} must be a git branch name, got {self.branch!r}")

    @property
    def github_path(self) -> str:
        """``OWNER/REPO``."""
        return _GITHUB.match(self.repository)["path"]


def read_config(path: str | Path) -> CourseConfig | None:
    """The ``[tool.labkit]`` table of one ``pyproject.toml``; None when it has none.

    Raises:
        ValueError: the file is not valid TOML, or the table's values are malformed.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML ({err})") from None
    table = data.get("tool", {}).get("labkit")
    if table is None:
        return None
    unknown = sorted(set(table) - {"repository", "branch"})
    if unknown:
        raise ValueError(
            f"{path}: unknown key(s) {', '.join(unknown)} in [{CONFIG_TABLE}] "
            "(expected repository, branch)"
        )
    if "repository" not in table:
        raise ValueError(f"{path}: [{CONFIG_TABLE}] needs repository = 'https://github.com/...'")
    return CourseConfig(table["repository"], table.get("branch", "main"), source=path)


def find_config(start: str | Path, required: bool = True) -> CourseConfig | None:
    """The course configuration: the nearest ``pyproject.toml`` with ``[tool.labkit]``.

    Args:
        start: a file or folder of the course (``labkit build`` passes the lab sources).
        required: raise when there is none (``labkit build``); else return None (``labkit
            course run`` and the grader execute labs from any folder).

    Raises:
        FileNotFoundError: ``required`` and no ``pyproject.toml`` at or above ``start`` has
            the table.
    """
    start = Path(start).resolve()
    folder = start if start.is_dir() else start.parent
    for candidate in (folder, *folder.parents):
        config = candidate / CONFIG_FILE
        if config.is_file():
            found = read_config(config)
            if found is not None:
                return found
    if not required:
        return None
    raise FileNotFoundError(
        f"no {CONFIG_FILE} with a [{CONFIG_TABLE}] table at or above {folder}: add one to the "
        f"course's {CONFIG_FILE}:\n[{CONFIG_TABLE}]\n"
        'repository = "https://github.com/OWNER/REPO"\nbranch = "main"'
    )


def colab_url(config: CourseConfig, path_in_repo: str) -> str:
    """Colab's address for a notebook of the course, e.g. ``notebooks/01_x.ipynb``."""
    return (
        f"https://colab.research.google.com/github/{config.github_path}/blob/"
        f"{config.branch}/{path_in_repo}"
    )


def badge_markdown(config: CourseConfig, path_in_repo: str) -> str:
    """The "Open in Colab" badge (markdown) for a notebook of the course."""
    return (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({colab_url(config, path_in_repo)})"
    )


_INSTALL_CELL = """\
# Set-up, step 1 of 2. On Google Colab this installs labkit; elsewhere it does nothing.
# Colab's own packages stay as they are: pip gets their installed versions as pins, and
# the cell checks afterwards that pip replaced nothing. A labkit-*.whl uploaded to this
# session's files or to Drive (MyDrive) is installed instead of the course's repository.
import os

if "COLAB_RELEASE_TAG" in os.environ:
    import glob
    import subprocess
    import sys
    from importlib import metadata

    def installed():  # {{name: version}} of every installed distribution, as pip sees them
        return {{d.metadata["Name"].lower(): d.version for d in metadata.distributions()}}

    KEEP = [{keep}]  # Colab's own: never replaced
    before = installed()
    pins = [f"{{name}}=={{before[name]}}" for name in KEEP if name in before]
    uploaded = sorted(glob.glob("{wheel_here}"))  # the Files panel: this session's folder
    uploaded = uploaded or sorted(glob.glob("{wheel_drive}"))  # Drive, once mounted
{choose}
    print(f"Installing {{labkit}}, keeping {{', '.join(pins)}}")
    command = [sys.executable, "-m", "pip", "install", "-q", labkit, *pins]
    pip = subprocess.run(command, capture_output=True, text=True)
    if pip.returncode != 0:
        print(pip.stdout[-4000:])
        print(pip.stderr[-4000:])
        raise RuntimeError(
            "pip could not install labkit next to Colab's own packages (its message is above). "
            "Runtime > Disconnect and delete runtime, then Runtime > Run all; if it fails again, "
            "send the message above to your instructor."
        )
    after = installed()
    changed = [f"{{n}} {{v}} -> {{after[n]}}" for n, v in before.items() if after.get(n, v) != v]
    if changed:
        raise RuntimeError(
            "RESTART NEEDED: pip replaced " + ", ".join(changed) + ", which this session may "
            "already have loaded. Runtime > Restart session, then Runtime > Run all (this "
            "cell then finds everything installed and goes on)."
        )
    print(f"labkit {{after['labkit']}} installed; Colab's packages unchanged.")"""


_WHEEL_ONLY = """\
    if not uploaded:
        raise RuntimeError(
            "This course has no public repository: upload the labkit-*.whl your instructor "
            "gave you with the Files panel (left bar), or put it in Drive's MyDrive and mount "
            "Drive, then run this cell again."
        )
    labkit = uploaded[-1]"""


def install_cell_source(config: CourseConfig | None) -> str:
    """The Colab install cell that ``labkit build`` puts before a lab's first code cell.

    Args:
        config: where the course is published; None: no public repository, so the cell
            installs only an uploaded wheel (and says how to upload one).
    """
    if config is None:
        choose = _WHEEL_ONLY
    else:
        where = f"labkit @ git+{config.repository}@{config.branch}"
        choose = f'    labkit = uploaded[-1] if uploaded else "{where}"'
    return _INSTALL_CELL.format(
        keep=", ".join(f'"{name}"' for name in KEEP),
        wheel_here=WHEEL_GLOBS[0],
        wheel_drive=WHEEL_GLOBS[1],
        choose=choose,
    )
