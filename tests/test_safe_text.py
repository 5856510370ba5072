"""Names from a user's files are shown and written so that nothing runs them."""

from __future__ import annotations

import pytest

from leo_lightning.jobs.safe_text import spreadsheet_cell, without_control_characters


@pytest.mark.parametrize("name", ["=1+2", "+1", "-1", "@SUM(1+1)", "\t=1", "\r=1"])
def test_a_cell_a_spreadsheet_would_evaluate_is_quoted(name):
    cell = spreadsheet_cell(name)
    assert cell.startswith("'") and cell[1:] == without_control_characters(name)


@pytest.mark.parametrize("name", ["class_0", "a=b", "1+2", "ünïcode", "'quoted"])
def test_an_ordinary_name_is_unchanged(name):
    assert spreadsheet_cell(name) == name


def test_control_characters_are_shown_as_escapes():
    assert without_control_characters("red\x1b[31mink\r\x7f\x85") == "red\\x1b[31mink\\r\\x7f\\x85"
