"""``labkit course run``: execute every lab's solution notebook and collect the results.

For each lab source ``NN_name.py`` (in order) the solution notebook is built in memory from
the source (so it is never stale), its ``parameters`` cell is followed by an injected cell
(``PROFILE = ...``, ``DATA = ...``, papermill's convention, tagged ``injected-parameters``),
and it is executed by nbclient on a fresh Jupyter kernel that runs *this* Python
(``sys.executable``, whatever kernelspec "python3" says elsewhere). The kernel's environment
adds ``LABKIT_PROFILE``, ``LABKIT_RESULTS`` (the results protocol of
``labkit.course.setup.record_result``) and ``LABKIT_CHECKS_STRICT=1`` (a solution must pass
its own checks); ``MPLBACKEND`` is dropped so figures are captured inline.

Written to ``--out DIR``: ``NN_name.ipynb`` (executed, also when a cell failed),
``NN_name.html``, ``results.jsonl`` (one line per ``record_result``), ``results.md`` (labs,
trained models beside the reports' figures). Each lab runs in its own working folder
``DIR/work/NN_name``. A failing lab (a source that does not build, a cell that raises or
times out, a dead kernel) is reported and the run goes on; ``run_course`` returns the per-lab
outcomes and the command exits non-zero if any failed. ``--timeout`` is the limit per lab
(the whole notebook), in seconds (default: an hour in the smoke profile, none in full); the
lab's trainings stop by themselves within its first 80 % (``$LABKIT_DEADLINE``), so the
limits nest: a training is cut and marked, not killed with its cell.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from labkit.course.build import BuildError, build_lab, find_labs
from labkit.course.kernel import NotebookTimeout, execute_notebook, inject_parameters
from labkit.course.plan import CT_LAB
from labkit.course.setup import RESULTS_ENV_VAR
from labkit.metrics import SCORE_NAMES
from labkit.runs import SAFETY_STOP, get_profile
from labkit.train.limits import deadline_for

# One time limit per lab (smoke: an hour; labs 01-07 took 4-126 s each on an idle 2-core
# machine, README). The lab's trainings must end within the first limits.TRAINING_SHARE of it
# ($LABKIT_DEADLINE in the kernel, read by fit and train_ct), so a training under load is
# cut by its safety limit and says so, and the lab's limit is left for the cells after it.
SMOKE_LAB_TIMEOUT_S = 3600


def export_html(nb: nbformat.NotebookNode, path: Path) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    path.write_text(body, encoding="utf-8")


@dataclass
class LabRun:
    """One lab's outcome in a course run."""

    lab: str
    stem: str
    ok: bool
    seconds: float
    error: str = ""
    safety_stops: int = 0  # trainings the profile's safety limit stopped (warnings printed)


def _error_summary(err: BaseException) -> str:
    """The last line of a cell error (the exception), not the whole traceback."""
    name = getattr(err, "ename", "") or type(err).__name__
    value = getattr(err, "evalue", "") or str(err).strip().splitlines()[-1:] or [""]
    if isinstance(value, list):
        value = value[0]
    return f"{name}: {value}"[:300]


def run_course(
    source: str | Path = "solutions",
    out: str | Path = "runs/course",
    data: str | None = None,
    ct_data: str | None = None,
    profile: str | None = None,
    labs: list[str] | None = None,
    timeout: float | None = None,
    progress: bool = True,
) -> list[LabRun]:
    """Execute the labs' solution notebooks in order; write notebooks, HTML and results.md.

    Args:
        source: folder of ``NN_name.py`` lab sources.
        out: output folder (created).
        data: ``"phantom"``, a dataset root, or ``None`` (each notebook's own search).
        ct_data: lab 07's CT tree, ``"phantom"`` or ``None`` (the lab's own search:
            ``LABKIT_CT_DATA``, kagglehub cache, phantom CT); injected as ``CT_DATA`` into
            the labs whose parameters cell has it.
        profile: ``"smoke"``, ``"practical"``, ``"full"`` or ``None`` (``LABKIT_PROFILE``,
            else smoke).
        labs: lab numbers to run (default: all).
        timeout: seconds allowed per lab (the whole notebook); ``None``: an hour in the
            smoke profile, no limit in full (a full training may take hours on a GPU).
        progress: show a tqdm progress bar over labs.

    Returns:
        One ``LabRun`` per lab, in order.
    """
    from tqdm.auto import tqdm

    prof = get_profile(profile)
    if timeout is None:
        timeout = SMOKE_LAB_TIMEOUT_S if prof.name == "smoke" else None
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout: expected seconds per lab above 0, got {timeout!r}")
    sources = find_labs(source, labs)
    if not sources:
        raise FileNotFoundError(f"no lab sources (NN_name.py) in {source}")
    if data is not None and str(data).lower() != "phantom":
        data = str(Path(data).expanduser().resolve())
    if ct_data is not None and str(ct_data).lower() not in ("phantom", "kaggle"):
        ct_data = str(Path(ct_data).expanduser().resolve())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = (out / "results.jsonl").resolve()
    results_path.write_text("", encoding="utf-8")
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)
    env.update(
        {
            "LABKIT_PROFILE": prof.name,
            RESULTS_ENV_VAR: str(results_path),
            "LABKIT_CHECKS_STRICT": "1",
        }
    )
    runs: list[LabRun] = []
    bar = tqdm(sources, desc="labs", unit="lab", disable=not progress)
    for src in bar:
        bar.set_postfix_str(src.stem)
        try:
            lab, _, nb = build_lab(src, notebooks_dir=out)
        except BuildError as err:  # a broken source fails its lab, not the run
            runs.append(LabRun(src.stem[:2], src.stem, False, 0.0, f"BuildError: {err}"))
            tqdm.write(f"lab {src.stem}: FAILED to build ({err})")
            continue
        values = {"PROFILE": prof.name, "DATA": data}
        if any(
            "CT_DATA" in c.source for c in nb.cells if "parameters" in c.metadata.get("tags", [])
        ):
            values["CT_DATA"] = ct_data  # lab 07 only: the other labs have no such parameter
        inject_parameters(nb, values)
        work = out / "work" / lab.stem
        work.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        error = _execute(nb, work, env, timeout)
        seconds = time.perf_counter() - start
        stops = count_safety_stops(nb)
        nbformat.write(nb, out / f"{lab.stem}.ipynb")
        try:
            export_html(nb, out / f"{lab.stem}.html")
        except Exception as err:  # HTML is a convenience; a failed export must not hide results
            error = error or f"HTML export failed: {type(err).__name__}: {err}"
        runs.append(LabRun(lab.lab, lab.stem, not error, seconds, error, stops))
        status = "ok" if not error else f"FAILED ({error})"
        if stops:
            status += f"; {stops} training(s) STOPPED BY THE SAFETY LIMIT"
        tqdm.write(f"lab {lab.lab} {lab.stem}: {status} in {seconds:.0f} s")
    rows = read_results(results_path)
    write_results_md(out / "results.md", runs, rows, prof.name, data)
    return runs


def _execute(nb: nbformat.NotebookNode, work: Path, env: dict, timeout: float | None) -> str:
    """Run one lab's notebook in ``work``; what went wrong in one line, or ``""``."""
    from nbclient.exceptions import CellExecutionError, DeadKernelError

    env = dict(env)
    if timeout is not None:  # the trainings' deadline, inside the lab's limit
        env.update(deadline_for(timeout))
    try:
        execute_notebook(nb, cwd=work, env=env, timeout=timeout)
    except NotebookTimeout as err:
        return (
            f"{err}: the lab's time limit (--timeout {timeout:g} s per lab) killed it. "
            "Its trainings stop by themselves before that, so this cell hung or the "
            "machine is very slow"
        )
    except (CellExecutionError, DeadKernelError) as err:
        where = getattr(err, "cell_description", "")
        return (f"{where}: " if where else "") + _error_summary(err)
    except Exception as err:  # kernel failed to start, ...: report, go on
        return f"{type(err).__name__}: {err}"[:300]
    return ""


def count_safety_stops(nb: nbformat.NotebookNode) -> int:
    """How many safety-limit warnings (``labkit.runs.SAFETY_STOP``) a notebook printed."""
    n = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text = output.get("text", "")
            n += (text if isinstance(text, str) else "".join(text)).count(SAFETY_STOP)
    return n


# ---------------------------------------------------------------------------- results.md
def read_results(path: str | Path) -> list[dict]:
    """Rows written by ``record_result`` (one JSON object per line)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}, line {number}: not a JSON object ({err})") from err
    return rows


def _num(value: Any) -> str:
    if value is None:
        return "-"
    value = float(value)
    return "n/a" if value != value else f"{value:.3f}"


def _report_cell(row: dict) -> str:
    from labkit.runs import describe_figure, find_figure

    report = row.get("report")
    if report is None:
        return "-"
    if isinstance(report, str):
        figure = find_figure(row["lab"], report)
        return describe_figure(figure) if figure else f"{report} (unknown key)"
    parts = [str(report.get("source", "report"))]
    parts += [f"{k} {_num(report[k])}" for k in SCORE_NAMES if report.get(k) is not None]
    return ": ".join([parts[0], ", ".join(parts[1:])]) if len(parts) > 1 else parts[0]


def write_results_md(
    path: Path, runs: list[LabRun], rows: list[dict], profile: str, data: str | None
) -> None:
    """Labs table, trained-models table (beside the report's figures), the reports' tables."""
    from labkit import __version__
    from labkit.runs import report_table_md

    phantom = any(r.get("phantom") for r in rows) or data == "phantom"
    lines = [
        "# labkit course run: results",
        "",
        f"labkit {__version__} · profile `{profile}` · data `{data or 'notebook default'}` "
        f"· python {sys.version.split()[0]}",
        "",
    ]
    if phantom:
        lines += [
            "> **Phantom data**: synthetic chest X-rays. These numbers test that the code runs;",
            "> they are **not comparable** with the reports' figures.",
            "",
        ]
    elif profile != "full":
        lines += [
            f"> Profile `{profile}`: reduced sizes and epochs, not the reports' settings.",
            "",
        ]
    lines += ["## Labs", "", "| lab | notebook | status | time |", "| --- | --- | --- | --- |"]
    for run in runs:
        status = "ok" if run.ok else f"**FAILED**: {run.error}".replace("|", "\\|")
        if run.safety_stops:  # the models trained less than the lab's text assumes
            status += (
                f"; **{run.safety_stops} training(s) stopped by the safety limit**: "
                "fewer epochs than planned, scores not comparable"
            )
        html = path.parent / f"{run.stem}.html"
        name = f"[{run.stem}]({html.name})" if html.is_file() else run.stem
        lines.append(f"| {run.lab} | {name} | {status} | {run.seconds:.0f} s |")
    lines += [
        "",
        "## Trained models",
        "",
        "Metrics are fractions in [0, 1]: per-image means over images with infection "
        "(labkit's empty-mask policy, see ARCHITECTURE.md)"
        + (
            f"; lab {CT_LAB}'s are per-subject means: one score per CT volume with "
            "infection, counted over all its voxels."
            if any(row["lab"] == CT_LAB for row in rows)
            else "."
        ),
        "",
        "| lab | model | loss | Dice | IoU | sensitivity | precision | train time | "
        "report's figure (as reported) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        seconds = row.get("train_seconds")
        time_text = "-" if seconds is None else f"{seconds:.1f} s"
        metrics = " | ".join(_num(row.get(k)) for k in SCORE_NAMES)
        model = row["model"] + (f" **[{row['cut']}]**" if row.get("cut") else "")
        lines.append(
            f"| {row['lab']} | {model} | {row['loss']} | {metrics} | {time_text} | "
            f"{_report_cell(row)} |"
        )
    if not rows:
        lines.append("| - | no results recorded | | | | | | | |")
    cut_labs = sorted({row["lab"] for row in rows if row.get("cut")})
    if cut_labs:
        lines += [
            "",
            f"**[CUT]**: a safety limit stopped these trainings early (lab(s) "
            f"{', '.join(cut_labs)}): they trained less than the lab's other models, so "
            "comparing their rows with the others is unfair. Run those labs again on a less "
            "busy machine, or with a longer --timeout.",
        ]
    # Free-text notes that record_result carried (e.g. MAE scales, final losses).
    notes = [(row["lab"], row["model"], row["notes"]) for row in rows if row.get("notes")]
    if notes:
        lines += ["", "Notes:", ""]
        lines += [f"- lab {lab}, {model}: {text}" for lab, model, text in notes]
    lines += ["", "## The reports' own figures", ""]
    tables = [t for t in (report_table_md(run.lab) for run in runs) if t]
    for table in tables:
        lines += [table, ""]
    if not tables:
        lines.append("The labs run here have no figures from the reports.")
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
