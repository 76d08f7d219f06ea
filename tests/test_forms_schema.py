"""Schema and loader validation: every broken form fails with a message naming file and item."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from forms import Condition, FormLoadError, form_checksum, latest, load_bundled, load_form

HEADER = """\
id: broken
version: 1
title: Тест
respondent: school
sections:
  - id: "1"
    title: Раздел
    items:
"""

TOTAL = """\
      - id: teachers_total
        kind: integer
        text: Всего педагогов
"""


def write(tmp_path: Path, body: str, name: str = "broken.yaml", header: str = HEADER) -> Path:
    path = tmp_path / name
    path.write_text(header + body, encoding="utf-8")
    return path


def items(*parts: str) -> str:
    return "".join(textwrap.indent(textwrap.dedent(p).strip("\n") + "\n", "      ") for p in parts)


def load_error(path: Path) -> str:
    with pytest.raises(FormLoadError) as info:
        load_form(path)
    message = str(info.value)
    assert path.name in message, message
    return message


def test_minimal_form_loads(tmp_path: Path) -> None:
    form = load_form(write(tmp_path, "", header=HEADER + TOTAL))
    assert form.id == "broken"
    assert form.sections[0].items[0].id == "teachers_total"


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        pytest.param(
            items("- {id: teachers_total, kind: integer, text: Q, mni: 1}"),
            ["question 'teachers_total'", "unknown key 'mni'"],
            id="typo-key",
        ),
        pytest.param(
            items("- {id: teachers_total, kind: number, text: Q}"),
            ["question 'teachers_total'", "'kind'", "integer"],
            id="bad-kind",
        ),
        pytest.param(
            items("- {id: teachers_total, kind: integer}"),
            ["question 'teachers_total'", "required key 'text' is missing"],
            id="missing-text",
        ),
        pytest.param(
            items("- {id: TeachersTotal, kind: integer, text: Q}"),
            ["question 'TeachersTotal'", "snake_case"],
            id="id-not-snake-case",
        ),
        pytest.param(
            items("- {id: teachers_total, kind: integer, text: Q, min: 10, max: 5}"),
            ["question 'teachers_total'", "min (10) is greater than max (5)"],
            id="min-over-max",
        ),
        pytest.param(
            items(
                "- {id: teachers_total, kind: integer, text: Q}",
                "- {id: teachers_total, kind: text, text: Q}",
            ),
            ["question 'teachers_total'", "used more than once"],
            id="duplicate-id",
        ),
        pytest.param(
            items("- {id: pick, kind: choice, text: Q}"),
            ["question 'pick'", "at least one choice"],
            id="choice-without-choices",
        ),
        pytest.param(
            items(
                """
                - id: pick
                  kind: choice
                  text: Q
                  choices: [{id: a, text: A}, {id: a, text: B}]
                """
            ),
            ["question 'pick'", "duplicate choice id"],
            id="duplicate-choice-id",
        ),
        pytest.param(
            items("- {id: count, kind: integer, text: Q, document_when_yes: true}"),
            ["question 'count'", "only for yes_no"],
            id="document-when-yes-on-integer",
        ),
        pytest.param(
            items("- {id: comment, kind: text, text: Q, note_when_no: true}"),
            ["question 'comment'", "only for yes_no"],
            id="note-when-no-on-text",
        ),
        pytest.param(
            items(
                """
                - id: part
                  kind: integer
                  text: Q
                  constraints: [{op: "<=", ref: foo, message: Ошибка}]
                """
            ),
            ["question 'part'", "constraint refers to unknown question 'foo'"],
            id="constraint-unknown-ref",
        ),
        pytest.param(
            items(
                """
                - id: part
                  kind: integer
                  text: Q
                  constraints: [{op: "<=", ref: teachers_total, message: Ошибка}]
                """,
                "- {id: teachers_total, kind: integer, text: Q}",
            ),
            ["question 'part'", "must come earlier"],
            id="constraint-ref-later",
        ),
        pytest.param(
            items(
                "- {id: flag, kind: yes_no, text: Q}",
                """
                - id: part
                  kind: integer
                  text: Q
                  constraints: [{op: "<=", ref: flag, message: Ошибка}]
                """,
            ),
            ["question 'part'", "'flag'", "not integer"],
            id="constraint-ref-not-integer",
        ),
        pytest.param(
            TOTAL
            + items(
                """
                - id: part
                  kind: integer
                  text: Q
                  constraints: [{op: "<=", ref: teachers_total, message: "Не больше {total}"}]
                """
            ),
            ["question 'part'", "placeholder", "total"],
            id="constraint-bad-placeholder",
        ),
        pytest.param(
            TOTAL
            + items(
                """
                - id: part
                  kind: integer
                  text: Q
                  constraints: [{op: "=<", ref: teachers_total, message: Ошибка}]
                """
            ),
            ["question 'part'", "op"],
            id="constraint-bad-op",
        ),
        pytest.param(
            items(
                """
                - id: detail
                  kind: text
                  text: Q
                  show_if: [{question: flag, equals: true}]
                """,
                "- {id: flag, kind: yes_no, text: Q}",
            ),
            ["question 'detail'", "show_if", "must come earlier"],
            id="condition-ref-later",
        ),
        pytest.param(
            items(
                """
                - id: detail
                  kind: text
                  text: Q
                  show_if: [{question: nope, equals: true}]
                """
            ),
            ["question 'detail'", "unknown question 'nope'"],
            id="condition-unknown-ref",
        ),
        pytest.param(
            items(
                "- {id: flag, kind: yes_no, text: Q}",
                """
                - id: detail
                  kind: text
                  text: Q
                  show_if: [{question: flag, equals: да}]
                """,
            ),
            ["question 'detail'", "never match", "true or false"],
            id="condition-value-never-matches",
        ),
        pytest.param(
            items(
                """
                - id: detail
                  kind: text
                  text: Q
                  show_if: [{context: risk, equals: true}]
                """
            ),
            ["question 'detail'", "unknown context flag 'risk'"],
            id="condition-unknown-context",
        ),
        pytest.param(
            items(
                "- {id: flag, kind: yes_no, text: Q}",
                """
                - id: detail
                  kind: text
                  text: Q
                  show_if: [{question: flag, context: shnor}]
                """,
            ),
            ["question 'detail'", "exactly one of"],
            id="condition-question-and-context",
        ),
        pytest.param(
            items(
                """
                - id: rows
                  kind: group
                  title: Строки
                  add_more_text: Ещё?
                  questions:
                    - {id: inner, kind: integer, text: Q}
                """,
                """
                - id: outer
                  kind: integer
                  text: Q
                  constraints: [{op: "<=", ref: inner, message: Ошибка}]
                """,
            ),
            ["question 'outer'", "inside group 'rows'"],
            id="ref-into-other-group",
        ),
        pytest.param(
            items(
                """
                - id: rows
                  kind: group
                  title: Строки
                  add_more_text: Ещё?
                  questions:
                    - {id: inner, kind: integer, txt: Q}
                """
            ),
            ["question 'inner'", "unknown key 'txt'"],
            id="typo-inside-group",
        ),
    ],
)
def test_question_validators(tmp_path: Path, body: str, fragments: list[str]) -> None:
    message = load_error(write(tmp_path, body))
    for fragment in fragments:
        assert fragment in message, message


INDICATOR_ITEMS = TOTAL + items(
    "- {id: part, kind: integer, text: Q}",
    "- {id: flag, kind: yes_no, text: Q}",
    "- {id: flag2, kind: yes_no, text: Q}",
)


@pytest.mark.parametrize(
    ("indicator", "fragments"),
    [
        pytest.param(
            "{id: ind, title: T, section: '1', kind: share, numerator: nope, denominator: part}",
            ["indicator 'ind'", "unknown question 'nope'"],
            id="unknown-question",
        ),
        pytest.param(
            "{id: ind, title: T, section: '1', kind: share, numerator: flag, denominator: part}",
            ["indicator 'ind'", "needs integer questions", "'flag'"],
            id="share-needs-integers",
        ),
        pytest.param(
            "{id: ind, title: T, section: '1', kind: yes_no, question: part}",
            ["indicator 'ind'", "needs yes_no questions", "'part'"],
            id="yes-no-needs-yes-no",
        ),
        pytest.param(
            "{id: ind, title: T, section: '1', kind: at_least, questions: [flag, part], min: 1}",
            ["indicator 'ind'", "'part'"],
            id="at-least-needs-yes-no",
        ),
        pytest.param(
            "{id: ind, title: T, section: '1', kind: at_least, questions: [flag, flag2], min: 3}",
            ["indicator 'ind'", "'min' must be between 1 and"],
            id="at-least-min-too-big",
        ),
        pytest.param(
            "{id: ind, title: T, section: '1', kind: share, numerator: part}",
            ["indicator 'ind'", "needs denominator"],
            id="share-without-denominator",
        ),
        pytest.param(
            "{id: ind, title: T, section: '9', kind: yes_no, question: flag}",
            ["indicator 'ind'", "section '9'"],
            id="unknown-section",
        ),
        pytest.param(
            "{id: ind, title: T, section: '1', kind: yes_no, question: flag,"
            " municipal: {kind: sum_ratio, formula: f}}",
            ["indicator 'ind'", "does not fit"],
            id="municipal-rule-mismatch",
        ),
        pytest.param(
            "{id: ind, title: T, section: '1', kind: yes_no, question: flag,"
            " municipal: {kind: count_share, population: everyone, formula: f}}",
            ["indicator 'ind'", "population"],
            id="municipal-bad-population",
        ),
    ],
)
def test_indicator_validators(tmp_path: Path, indicator: str, fragments: list[str]) -> None:
    body = INDICATOR_ITEMS + f"indicators:\n  - {indicator}\n"
    message = load_error(write(tmp_path, body))
    for fragment in fragments:
        assert fragment in message, message


def test_all_problems_are_reported(tmp_path: Path) -> None:
    body = items(
        """
        - id: a
          kind: integer
          text: Q
          constraints: [{op: "<=", ref: x, message: M}]
        """,
        """
        - id: b
          kind: integer
          text: Q
          constraints: [{op: "<=", ref: y, message: M}]
        """,
    )
    message = load_error(write(tmp_path, body))
    lines = message.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("broken.yaml: ") or "broken.yaml" in line for line in lines)
    assert "question 'a'" in lines[0]
    assert "question 'b'" in lines[1]


def test_invalid_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, items("- id: q\n  kind: text\n  text: вопрос: с двоеточием"))
    message = load_error(path)
    assert "invalid YAML" in message
    assert "line" in message


def test_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n", encoding="utf-8")
    assert "mapping" in load_error(path)


def test_missing_top_level_key(tmp_path: Path) -> None:
    path = tmp_path / "top.yaml"
    path.write_text("id: x\ntitle: T\nrespondent: school\nsections: []\n", encoding="utf-8")
    message = load_error(path)
    assert "required key 'version' is missing" in message


def test_missing_file(tmp_path: Path) -> None:
    message = load_error(tmp_path / "absent.yaml")
    assert "cannot read" in message


def test_file_name_must_match_id_and_version(tmp_path: Path) -> None:
    path = write(tmp_path, "", name="other.v2.yaml", header=HEADER + TOTAL)
    message = load_error(path)
    assert "'other' version 2" in message
    assert "'broken' version 1" in message


def test_load_bundled_rejects_duplicates(tmp_path: Path) -> None:
    write(tmp_path, "", name="broken.v1.yaml", header=HEADER + TOTAL)
    write(tmp_path, "", name="broken.v1.yml", header=HEADER + TOTAL)
    with pytest.raises(FormLoadError) as info:
        load_bundled(tmp_path)
    assert "already defined" in str(info.value)
    assert "broken.v1" in str(info.value)


def test_load_bundled_from_dir_and_latest(tmp_path: Path) -> None:
    write(tmp_path, "", name="broken.v1.yaml", header=HEADER + TOTAL)
    header_v2 = HEADER.replace("version: 1", "version: 2")
    write(tmp_path, "", name="broken.v2.yaml", header=header_v2 + TOTAL)
    forms = load_bundled(tmp_path)
    assert sorted(forms) == [("broken", 1), ("broken", 2)]
    assert latest(forms, "broken").version == 2
    with pytest.raises(KeyError):
        latest(forms, "missing")


def test_checksum_is_stable_and_sensitive(tmp_path: Path) -> None:
    a = load_form(write(tmp_path, "", name="a.yaml", header=HEADER + TOTAL))
    b = load_form(write(tmp_path, "", name="b.yaml", header=HEADER + TOTAL))
    changed = load_form(
        write(tmp_path, "", name="c.yaml", header=HEADER + TOTAL.replace("Всего", "Итого"))
    )
    assert form_checksum(a) == form_checksum(b)
    assert len(form_checksum(a)) == 64
    assert form_checksum(a) != form_checksum(changed)


def test_condition_in_alias() -> None:
    cond = Condition.model_validate({"question": "q", "in": [1, 2]})
    assert cond.in_ == [1, 2]
    assert cond.expected_values == [1, 2]
    assert Condition(question="q", in_=[3]).in_ == [3]
