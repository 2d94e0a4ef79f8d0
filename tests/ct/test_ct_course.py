"""`labkit course run --ct-data`: lab 07's parameter reaches the labs that declare it (on a
real Jupyter kernel), and no other lab gets a new variable."""

from __future__ import annotations

import nbformat
import pytest

from labkit.cli import main as cli_main

CT_LAB = """\
# %% tags=["parameters"]
PROFILE = None
DATA = None
CT_DATA = None

# %%
print("CT_DATA is", CT_DATA)
"""

XRAY_LAB = """\
# %% tags=["parameters"]
PROFILE = None
DATA = None

# %%
print("has CT_DATA:", "CT_DATA" in globals())
"""


def _outputs(path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )


@pytest.mark.slow
def test_ct_data_is_injected_only_where_the_parameters_cell_has_it(tmp_path):
    (tmp_path / "pyproject.toml").write_text(  # labkit build reads the course's address here
        '[tool.labkit]\nrepository = "https://github.com/example/course"\nbranch = "main"\n'
    )
    source = tmp_path / "labs"
    source.mkdir()
    (source / "06_xray.py").write_text(XRAY_LAB)
    (source / "07_ct.py").write_text(CT_LAB)
    ct_root = tmp_path / "my ct"
    ct_root.mkdir()
    out = tmp_path / "out"
    code = cli_main(
        ["course", "run", "--source", str(source), "--out", str(out), "--profile", "smoke",
         "--ct-data", str(ct_root), "--no-progress"]
    )  # fmt: skip
    assert code == 0
    assert f"CT_DATA is {ct_root.resolve()}" in _outputs(out / "07_ct.ipynb")
    assert "has CT_DATA: False" in _outputs(out / "06_xray.ipynb")
