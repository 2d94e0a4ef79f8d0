"""Helpers shared by the lab tests (test_labs.py, test_labs_01_03.py, test_labs_04_06.py).

The labs' sources and exercise points, the namespace a built notebook's exercise cells
create, and the verdict every wrong implementation must get.
"""

from __future__ import annotations

from pathlib import Path

from labkit import checks
from labkit.checks import EXERCISES
from labkit.course.build import build_lab, exercise_cells

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {
    "01": ROOT / "solutions" / "01_data_exploration.py",
    "02": ROOT / "solutions" / "02_baseline_unet.py",
    "03": ROOT / "solutions" / "03_residual_unet.py",
    "04": ROOT / "solutions" / "04_pretrained_encoder.py",
    "05": ROOT / "solutions" / "05_cascade.py",
    "06": ROOT / "solutions" / "06_fv_paspp_ds.py",
    "07": ROOT / "solutions" / "07_ct_volumes.py",
}
POINTS = {  # exercise id -> points
    "01.count_images": 2,
    "01.infection_fraction": 1,
    "01.minmax_scale": 1,
    "01.one_hot": 1,
    "02.DoubleConv": 2,
    "02.UNet3": 2,
    "02.dice": 1,
    "02.iou": 1,
    "03.ResidualBlock": 2,
    "03.ResUNet3": 1,
    "03.bce_and_mse": 1,
    "04.focal_loss": 2,
    "04.imagenet_normalize": 2,
    "04.set_encoder_trainable": 2,
    "05.combined_loss": 2,
    "05.constrain_to_lung": 1,
    "05.fp_outside_lung": 1,
    "05.infection_input": 1,
    "06.ContrastGate": 2,
    "06.PASPP": 2,
    "06.deep_supervision_loss": 2,
    "07.ContrastGate3d": 2,
    "07.sample_patch_starts": 2,
    "07.subject_dice": 1,
    "07.window_ct": 2,
}

# The imports a lab's notebook has made before its first exercise cell.
_EARLY_LABS = (
    "import numpy as np\nimport torch\nfrom torch import nn\n"
    "from labkit.data import CLASSES, SPLITS\nfrom labkit.models import DoubleConv\n"
)
_LATE_LABS = (
    "import math\nimport numpy as np\nimport torch\nimport torch.nn.functional as F\n"
    "from torch import nn\nimport labkit as lk\nfrom labkit.models import ConvBNReLU\n"
)
PRELUDES = {lab: _EARLY_LABS if lab <= "03" else _LATE_LABS for lab in SOURCES}


def exercise_ids(*labs: str) -> set[str]:
    """The ids in `POINTS` of these labs."""
    return {i for i in POINTS if i.split(".")[0] in labs}


def exercise_namespace(lab: str, kind: str, tmp_path: Path) -> dict:
    """Execute a built notebook's exercise cells (in order) the way the notebook would."""
    _, student, solution = build_lab(SOURCES[lab], tmp_path)
    nb = student if kind == "student" else solution
    ns: dict = {}
    exec(PRELUDES[lab], ns)
    for cell in exercise_cells(nb).values():
        exec(cell.source, ns)
    return ns


def wrong_ids(wrong: list[tuple]) -> list[str]:
    """Test ids for a list of (exercise id, make_wrong, message): the exercise and its index."""
    return [f"{w[0]}-{i}" for i, w in enumerate(wrong)]


def assert_check_fails(exercise_id: str, wrong, message: str, capsys) -> None:
    """``check(exercise_id, wrong)`` fails saying ``message``, with a hint, and falls back."""
    used = checks.check(exercise_id, wrong)
    out = capsys.readouterr().out
    ex = EXERCISES[exercise_id]
    assert out.startswith(f"[FAIL] {ex.title} ({exercise_id}): "), out
    assert message in out, out
    assert f"From here on, `{ex.function}` is labkit's version, not yours" in out
    assert used is ex.reference_impl() and checks.SUBMITTED[exercise_id] is wrong
    assert checks.RESULTS[exercise_id]["status"] == "fail"
    assert "\n  Hint: " in out  # the exercise's hint, or a more specific one from its test
