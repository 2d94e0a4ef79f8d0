"""How a progress bar ends (``labkit.progress.end_bar``), in the console and as the notebook
widget students see (ipywidgets 8 here, 7.7.1 under ``make colab-check``)."""

from __future__ import annotations

import pytest

from labkit.progress import drawn_when_closed, end_bar


def _notebook_bar(total: int):
    pytest.importorskip("ipywidgets")
    from tqdm.notebook import tqdm

    return tqdm(total=total, desc="epochs")


def _widget(bar):
    label, progress, _ = bar.container.children
    return label.value.replace("\u2007", " "), progress  # tqdm writes figure spaces


def test_an_early_stop_ends_as_a_full_green_widget_that_says_why():
    bar = _notebook_bar(10)
    bar.update(4)
    end_bar(bar, "epochs: stopped early after 4 of 10", success=True)
    label, progress = _widget(bar)
    assert progress.bar_style == "success"  # not tqdm's red "danger" for n < total
    assert (progress.value, progress.max) == (4, 4)  # the epochs really done
    assert "stopped early after 4 of 10" in label


def test_a_cut_run_ends_short_and_red():
    bar = _notebook_bar(10)
    bar.update(6)
    end_bar(bar, "epochs: CUT after 6 of 10 by the safety limit (10 min)", success=False)
    label, progress = _widget(bar)
    assert progress.bar_style == "danger" and (progress.value, progress.max) == (6, 10)
    assert "CUT after 6 of 10" in label


def test_the_console_bar_ends_at_the_count_reached_and_keeps_its_elapsed_time(capsys):
    from tqdm import tqdm

    bar = tqdm(total=10, desc="epochs")
    bar.update(3)
    bar.start_t -= 125  # as if the three epochs took two minutes
    end_bar(bar, "epochs: stopped early after 3 of 10", success=True)
    final = capsys.readouterr().err.split("\r")[-1]
    assert "stopped early after 3 of 10" in final and "3/3" in final and "02:0" in final, final


def test_a_disabled_bar_is_just_closed():
    from tqdm import tqdm

    bar = tqdm(total=5, disable=True)
    end_bar(bar, "anything", success=True)  # no error, nothing shown


def _batch_bar(total: int):
    pytest.importorskip("ipywidgets")
    from tqdm.notebook import tqdm

    return tqdm(total=total, desc="val", leave=False)  # as labkit.progress.batch_bar


def test_a_batch_bar_is_drawn_at_its_end_before_it_closes():
    bar = _batch_bar(3)
    with drawn_when_closed(bar):
        for _ in range(3):
            bar.update()  # faster than tqdm's mininterval: the last states are not drawn
    right = bar.container.children[2].value.replace("\u2007", " ")
    assert right.strip().startswith("3/3"), right


def test_a_batch_bar_stopped_by_an_error_shows_where_in_red():
    bar = _batch_bar(3)
    with pytest.raises(ValueError), drawn_when_closed(bar):
        bar.update(2)
        raise ValueError("the model output NaN")
    label, progress = _widget(bar)
    right = bar.container.children[2].value.replace("\u2007", " ")
    assert progress.bar_style == "danger" and right.strip().startswith("2/3"), right
