"""Every progress bar in a notebook saved by `labkit course run` ends showing what happened:
the batch bars of training, validation and evaluation at n/n, not at the last state tqdm
happened to draw (a new user found "val 2/3" bars in saved notebooks). A real course run
of a small lab; the bars are read back from the widget state saved in the .ipynb."""

from __future__ import annotations

import re
import subprocess
import sys

import nbformat
import pytest

LAB = """\
# %% [markdown]
# # Lab 93: bars

# %% tags=["parameters"]
PROFILE = None
DATA = None

# %%
import torch

import labkit as lk
from labkit.data import BatchLoader
from labkit.data.cache import SegData

g = torch.Generator().manual_seed(0)
images = torch.randint(0, 256, (12, 1, 32, 32), dtype=torch.uint8, generator=g)
masks = (images > 128).to(torch.uint8)
data = SegData(images, torch.ones_like(masks), masks, ["COVID-19"] * 12,
               [f"{i}.png" for i in range(12)], "Test", "infection")
model = lk.build_model("unet", base_width=4)
history = lk.fit(model, BatchLoader(data, 4), BatchLoader(data, 4, shuffle=False),
                 epochs=3, lr=1e-3, device="cpu")
result = lk.evaluate(model, data, batch_size=4, device="cpu")
"""


def _bars(nb: nbformat.NotebookNode) -> list[tuple[str, float, float, str]]:
    """(left text, progress value, progress max, right text) of every bar shown."""
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    bars = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            if view is None:
                continue
            children = state[view["model_id"]]["state"]["children"]
            left, progress, right = (state[c.removeprefix("IPY_MODEL_")]["state"] for c in children)
            text = [t.replace("\u2007", " ") for t in (left["value"], right["value"])]  # tqdm's
            bars.append((text[0], progress["value"], progress["max"], text[1]))  # figure spaces
    return bars


@pytest.mark.slow
def test_every_saved_bar_ends_at_what_happened(tmp_path):
    (tmp_path / "labs").mkdir()
    (tmp_path / "labs" / "93_bars.py").write_text(LAB)
    command = [sys.executable, "-m", "labkit", "course", "run", "--source", str(tmp_path / "labs")]
    command += ["--out", str(tmp_path / "out"), "--no-progress"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bars = _bars(nbformat.read(tmp_path / "out" / "93_bars.ipynb", as_version=4))
    names = [re.sub(r":.*", "", left).strip() for left, *_ in bars]
    assert names == [
        "epochs",
        "train 1",
        "val",
        "train 2",
        "val",
        "train 3",
        "val",
        "evaluate Test",
    ]
    for left, value, maximum, right in bars:
        assert value == maximum == 3, (left, value, maximum, right)
        assert right.strip().startswith("3/3"), (left, right)  # the text says so too
        assert "100%" in left, left
