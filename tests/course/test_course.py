"""`labkit course run` end to end on small labs, each executed by a real Jupyter kernel."""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from pathlib import Path

import nbformat
import pytest

from labkit.cli import main as cli_main
from labkit.course import setup as course_setup
from labkit.course.kernel import inject_parameters
from labkit.course.runner import read_results
from labkit.runs import LABS, describe_figure, report_table_md

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# A lab whose own check fails: under `course run` (strict checks) the lab must fail.
BROKEN_LAB = """\
# %% [markdown]
# # Lab 01: broken on purpose

# %% tags=["parameters"]
PROFILE = None
DATA = None

# %%
import labkit as lk


def scale(x):
    return x  # not scaled: the check fails, and strict mode turns that into an error


scale = lk.checks.check("00.scale", scale)
print("not reached")
"""

# A lab after the broken one: the run must go on and still collect its result.
PLAIN_LAB = """\
# %% [markdown]
# # Lab 02: plain

# %% tags=["parameters"]
PROFILE = None
DATA = None

# %%
import os

from labkit.course.setup import setup

S = setup(lab="02", profile=PROFILE, data=DATA, needs_data=False)
print("profile", S.profile.name, "DATA", DATA, "strict", os.environ["LABKIT_CHECKS_STRICT"])
print("MPLBACKEND", os.environ.get("MPLBACKEND"))
print("deadline", os.environ["LABKIT_DEADLINE"])  # by when this lab's trainings must end

from labkit.train import History

stopped = History(epoch=[1], epochs_planned=10)
stopped.stopped_reason = "time_budget"  # as fit leaves it when the safety limit stops a run
S.profile.warn_if_stopped(stopped)
S.record_result(model="unet3", loss="bce", metrics={"dice": 0.25, "iou": 1 / 7}, report="001.unet",
                history=stopped)
"""

# A lab with a cell that hangs: the lab's time limit kills it, and says which cell.
HANGING_LAB = """\
# %% [markdown]
# # Lab 04: hangs

# %% tags=["parameters"]
PROFILE = None
DATA = None

# %% [markdown]
# ## 2. Waiting for ever

# %%
import time

time.sleep(3600)
"""


@pytest.mark.slow
def test_course_run_end_to_end(tmp_path, monkeypatch, capsys):
    src = tmp_path / "labs"
    src.mkdir()
    shutil.copy(FIXTURES / "labs" / "00_demo.py", src / "00_demo.py")
    (src / "01_broken.py").write_text(BROKEN_LAB)
    (src / "02_plain.py").write_text(PLAIN_LAB)
    (src / "03_unbuildable.py").write_text("# %%\nprint('no parameters cell')\n")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(FIXTURES), os.environ.get("PYTHONPATH")]))
    )
    monkeypatch.setenv("LABKIT_EXERCISE_MODULES", "demo_exercises")
    monkeypatch.setenv("MPLBACKEND", "Agg")  # must not reach the kernel
    out = tmp_path / "out"
    started = time.time()
    rc = cli_main(
        ["course", "run", "--source", str(src), "--out", str(out), "--profile", "smoke"]
        + ["--data", "phantom", "--timeout", "120", "--no-progress"]
    )
    printed = capsys.readouterr().out
    assert rc == 1, printed
    assert "2 of 4 lab(s) ran" in printed
    # the failing cell as a reader finds it: its place and the section it is in
    assert (
        'FAILED lab 01 (01_broken): cell 5 (section "Lab 01: broken on purpose"): CheckError'
        in printed
    )
    assert "FAILED lab 03 (03_unbuildable): BuildError" in printed

    for stem in ("00_demo", "01_broken", "02_plain"):
        assert (out / f"{stem}.ipynb").is_file() and (out / f"{stem}.html").is_file()
    demo = nbformat.read(out / "00_demo.ipynb", as_version=4)
    texts = ["".join(o.get("text", "") for o in c.get("outputs", [])) for c in demo.cells]
    assert sum(t.startswith("[PASS]") for t in texts) == 3  # the solution passes its checks
    outputs = [o for c in demo.cells for o in c.get("outputs", [])]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    injected = next(c for c in demo.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert injected.source.splitlines()[1:] == ["PROFILE = 'smoke'", "DATA = 'phantom'"]
    assert "[PASS] Min-max scaling" in (out / "00_demo.html").read_text()
    broken = nbformat.read(out / "01_broken.ipynb", as_version=4)
    assert any(o.get("ename") == "CheckError" for c in broken.cells for o in c.get("outputs", []))
    plain = nbformat.read(out / "02_plain.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for o in plain.cells[-1].outputs)
    # Not the caller's Agg: ipykernel's inline backend, so figures reach the HTML.
    assert "profile smoke DATA phantom strict 1\nMPLBACKEND module://matplotlib_inline" in printed
    # the limits nest: the lab's trainings must end within 80 % of its 120 s
    deadline = float(printed.split("deadline ")[1].split()[0])
    assert started < deadline <= time.time() + 0.8 * 120

    rows = read_results(out / "results.jsonl")
    assert [(r["lab"], r["model"]) for r in rows] == [("00", "threshold"), ("02", "unet3")]
    assert math.isclose(rows[0]["dice"], 0.9165, abs_tol=1e-3)
    md = (out / "results.md").read_text()
    assert "| 00 | [00_demo](00_demo.html) | ok |" in md
    # the safety limit stopped a training in lab 02: its row says so
    assert "| 02 | [02_plain](02_plain.html) | ok; **1 training(s) stopped by the safety" in md
    assert "| 01 | [01_broken](01_broken.html) | **FAILED**: cell 5 (section" in md
    assert "| 03 | 03_unbuildable | **FAILED**: BuildError" in md
    assert "| 00 | threshold | none | 0.917 | - | - | - | 0.0 s | demo: dice 0.500 |" in md
    assert "| 02 | unet3 **[CUT at 1 of 10 epochs]** | bce | 0.250 | 0.143 | - | - |" in md
    assert "**[CUT]**: a safety limit stopped these trainings early (lab(s) 02)" in md
    assert describe_figure(LABS["02"].figures[0]) in md  # the report's figure beside it
    assert "not comparable" in md
    assert report_table_md("02") in md


@pytest.mark.slow
def test_a_cell_that_outlives_the_labs_time_limit_is_named_with_its_section(tmp_path, capsys):
    src = tmp_path / "labs"
    src.mkdir()
    (src / "04_hangs.py").write_text(HANGING_LAB)
    out = tmp_path / "out"
    rc = cli_main(
        ["course", "run", "--source", str(src), "--out", str(out), "--profile", "smoke"]
        + ["--timeout", "40", "--no-progress"]
    )
    printed = capsys.readouterr().out
    assert rc == 1
    assert (
        'FAILED lab 04 (04_hangs): cell 6 (section "2. Waiting for ever") was still running when '
        "the notebook's 40 s ran out: the lab's time limit (--timeout 40 s per lab) killed it"
    ) in printed, printed


def test_record_result_is_a_noop_without_the_env_and_validates(tmp_path, monkeypatch):
    monkeypatch.delenv(course_setup.RESULTS_ENV_VAR, raising=False)
    row = course_setup.record_result(model="m", loss="bce", metrics={"dice": 0.5}, lab="02")
    assert row["dice"] == 0.5 and row["iou"] is None
    target = tmp_path / "r.jsonl"
    monkeypatch.setenv(course_setup.RESULTS_ENV_VAR, str(target))
    course_setup.record_result(model="m", loss="mse", metrics={"iou": float("nan")}, lab="03")
    course_setup.record_result(model="n", loss="bce", metrics={"dice": 0.1}, lab="03")
    rows = read_results(target)
    assert [r["model"] for r in rows] == ["m", "n"] and math.isnan(rows[0]["iou"])
    # a lab whose data is not DATA (lab 07's CT) says itself whether it ran on phantom data
    row = course_setup.record_result(model="p", loss="bce", metrics={}, lab="07", phantom=True)
    assert row["phantom"] is True
    with pytest.raises(ValueError, match="outside \\[0, 1\\]; pass fractions"):
        course_setup.record_result(model="m", loss="bce", metrics={"dice": 76.3}, lab="06")
    with pytest.raises(ValueError, match="model must be a non-empty string"):
        course_setup.record_result(model="", loss="bce", metrics={}, lab="06")


def test_setup_prints_banner_and_labels_phantom_data(tmp_path, monkeypatch, capsys):
    from labkit.data.locate import ensure_phantom

    # A small real phantom dataset (the generator's minimum size), given as a path: setup
    # must still see that it is phantom data.
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delenv("COLAB_GPU", raising=False)
    root = ensure_phantom(12, size=64, progress=False)
    s = course_setup.setup(lab="01", profile="smoke", data=str(root), device="cpu")
    out = capsys.readouterr().out
    assert s.phantom and s.data == root and s.data_source == "argument"
    assert "PHANTOM DATA" in out and "NOT comparable" in out
    assert "profile: smoke" in out and "device: cpu" in out
    assert f"data: PHANTOM (synthetic) at {root} (chosen by: argument)" in out


def test_setup_with_real_looking_data_has_no_phantom_banner(tmp_path, monkeypatch, capsys):
    from labkit.data.locate import ensure_phantom

    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "cache"))
    root = ensure_phantom(12, size=64, progress=False)
    copy = tmp_path / "covidqu"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("phantom.json"))
    monkeypatch.setenv("LABKIT_DATA", str(copy))
    s = course_setup.setup(lab="01", profile="smoke", device="cpu")
    out = capsys.readouterr().out
    assert not s.phantom and s.data_source == "LABKIT_DATA"
    assert "PHANTOM" not in out and f"data: COVID-QU-Ex at {copy} (chosen by: LABKIT_DATA)" in out


def test_setup_on_colab_without_gpu_says_so(monkeypatch, capsys):
    monkeypatch.setenv("COLAB_RELEASE_TAG", "test")
    monkeypatch.delenv("LABKIT_DEVICE", raising=False)
    s = course_setup.setup(lab="01", profile="smoke", device="cpu", needs_data=False)
    assert s.colab
    assert "NO GPU: this Colab runtime is CPU-only" in capsys.readouterr().out


def test_kaggle_download_offline_fails_fast_and_clearly(tmp_path, monkeypatch):
    # An unresolvable proxy makes the download fail at once, with or without a network.
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://proxy.invalid:9")  # .invalid never resolves
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    with pytest.raises(RuntimeError, match="(cannot reach|could not download).*\n.*by hand"):
        course_setup.setup(lab="01", profile="smoke", data="kaggle", device="cpu")


def _no_kaggle(tmp_path, monkeypatch, credentials: bool) -> None:
    """A Colab-like environment without data; Kaggle credentials in a kaggle.json or none."""
    monkeypatch.setenv("COLAB_RELEASE_TAG", "test")
    for var in ("LABKIT_DATA", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle"))
    if credentials:
        (tmp_path / "kaggle").mkdir()
        (tmp_path / "kaggle" / "kaggle.json").write_text('{"username": "me", "key": "0123"}')


def test_setup_on_colab_without_credentials_says_phantom_and_how_to_get_data(
    tmp_path, monkeypatch, capsys
):
    _no_kaggle(tmp_path, monkeypatch, credentials=False)
    s = course_setup.setup(lab="01", profile="smoke", device="cpu")
    out = capsys.readouterr().out
    assert s.colab and s.phantom and s.data_source == "default"
    assert "PHANTOM DATA" in out and "Why: no Kaggle credentials found." in out
    assert "secret KAGGLE_API_TOKEN" in out and "KAGGLE_USERNAME and" in out
    assert "https://www.kaggle.com/datasets/anasmohammedtahir/covidqu" in out


def _colab_secrets(monkeypatch, secrets: dict[str, str]) -> None:
    """A stand-in ``google.colab.userdata`` holding ``secrets``; as Colab's, ``get`` raises
    ``SecretNotFoundError`` for a secret that is not defined."""
    import types

    userdata = types.ModuleType("google.colab.userdata")

    class SecretNotFoundError(Exception):
        pass

    def get(name):
        if name not in secrets:
            raise SecretNotFoundError(name)
        return secrets[name]

    userdata.SecretNotFoundError, userdata.get = SecretNotFoundError, get
    colab = types.ModuleType("google.colab")
    colab.userdata = userdata
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.userdata", userdata)


@pytest.mark.parametrize(
    "secrets, found, exported",
    [
        (
            {"KAGGLE_API_TOKEN": " tok "},
            "the KAGGLE_API_TOKEN Colab secret",
            {"KAGGLE_API_TOKEN": "tok"},
        ),
        (
            {"KAGGLE_USERNAME": "me", "KAGGLE_KEY": "0123"},
            "the KAGGLE_USERNAME and KAGGLE_KEY Colab secrets",
            {"KAGGLE_USERNAME": "me", "KAGGLE_KEY": "0123"},
        ),
        ({"KAGGLE_USERNAME": "me"}, None, {}),  # a key without its user name is no credential
    ],
)
def test_both_kinds_of_colab_secret_reach_kagglehub(
    tmp_path, monkeypatch, secrets, found, exported
):
    from labkit.data.download import kaggle_credentials, use_colab_secrets

    _no_kaggle(tmp_path, monkeypatch, credentials=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kaggle/access_token of the machine's
    _colab_secrets(monkeypatch, secrets)
    assert kaggle_credentials() == found
    use_colab_secrets()  # kagglehub 1.0.2 reads the old secrets only beside a token secret
    names = ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY")
    assert {k: os.environ[k] for k in names if k in os.environ} == exported


def test_the_banner_says_which_data_and_why(tmp_path, monkeypatch, capsys):
    from labkit.data.download import kaggle_reachable

    if kaggle_reachable():
        pytest.skip("www.kaggle.com is reachable here: the offline path cannot be exercised")
    _no_kaggle(tmp_path, monkeypatch, credentials=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    _colab_secrets(monkeypatch, {"KAGGLE_API_TOKEN": "tok"})
    course_setup.setup(lab="01", profile="smoke", device="cpu")
    out = capsys.readouterr().out
    assert "data: PHANTOM (synthetic) at" in out and "(chosen by: default)" in out
    assert "Why: cannot reach www.kaggle.com (offline?)." in out
    assert "secret KAGGLE_API_TOKEN" in out  # how to get the real data


def test_setup_on_colab_with_credentials_but_offline_says_why(tmp_path, monkeypatch, capsys):
    from labkit.data.download import kaggle_reachable

    if kaggle_reachable():
        pytest.skip("www.kaggle.com is reachable here: the offline path cannot be exercised")
    _no_kaggle(tmp_path, monkeypatch, credentials=True)
    s = course_setup.setup(lab="01", profile="smoke", device="cpu")
    out = capsys.readouterr().out
    assert s.phantom and "Why: cannot reach www.kaggle.com (offline?)." in out


def test_inject_parameters_needs_a_parameters_cell():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    with pytest.raises(ValueError, match="no cell tagged 'parameters'"):
        inject_parameters(nb, {"PROFILE": "smoke"})


def test_results_md_says_lab_07_scores_are_per_subject(tmp_path):
    from labkit.course.runner import write_results_md

    row = {"lab": "02", "model": "unet", "loss": "bce", "dice": 0.5}
    write_results_md(tmp_path / "a.md", [], [row], "smoke", "phantom")
    assert "per-image means" in (tmp_path / "a.md").read_text()
    assert "per-subject" not in (tmp_path / "a.md").read_text()
    ct = {"lab": "07", "model": "fvpaspp3d", "loss": "bce_dice", "dice": 0.9}
    write_results_md(tmp_path / "b.md", [], [row, ct], "smoke", "phantom")
    assert (
        "lab 07's are per-subject means: one score per CT volume" in (tmp_path / "b.md").read_text()
    )
