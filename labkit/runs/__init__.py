"""What a lab's run is: the reports' settings, the run profiles, recipes and each lab's runs.

* ``reports`` — what the five reports trained (``REPORT_SETTINGS``) and the figures they give.
* ``profiles`` — what applies to a whole profile (``smoke`` / ``practical`` / ``full``) and
  ``Profile.recipe``: a report's run in a profile, for the lab the profile is bound to.
* ``recipes`` — a ``Recipe`` (a run's settings with each departure and its reason), the smoke
  departures (``CLITraining``), the safety-limit warning.
* ``labs`` — ``LABS``: per lab one entry with its trainings, models, profile changes, report
  figures and ablation rows. Adding a lab's runs is one entry there.

``labkit.course.plan``, ``labkit.bench.labs``, ``labkit train``, ``labkit.ct.settings`` and the
notebooks read this face.
"""

from __future__ import annotations

from labkit.runs.labs import LABS, Lab, Run, find_figure, lab_of_model, report_table_md
from labkit.runs.profiles import PROFILES, Profile, build_recipe, get_profile
from labkit.runs.recipes import (
    SAFETY_STOP,
    CLITraining,
    Recipe,
    cut_note,
    cut_text,
    stop_warning,
    was_cut,
)
from labkit.runs.reports import (
    REPORT_SETTINGS,
    ReportFigure,
    ReportSettings,
    describe_figure,
    report_settings,
    settings_for_model,
)

__all__ = [
    "LABS", "PROFILES", "REPORT_SETTINGS", "SAFETY_STOP", "CLITraining", "Lab", "Profile",
    "Recipe", "ReportFigure", "ReportSettings", "Run", "build_recipe", "cut_note", "cut_text",
    "describe_figure", "find_figure", "get_profile", "lab_of_model", "report_settings",
    "report_table_md", "settings_for_model", "stop_warning", "was_cut",
]  # fmt: skip
