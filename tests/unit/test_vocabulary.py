"""The names cdcrecon speaks are defined once (``reconciliation.vocabulary``), and the one
test of "written too recently" decides the lag budget and the repair policy's minimum age."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from reconciliation import vocabulary
from reconciliation.choices import MismatchType, RecheckRule, ResolutionStatus, ValidationStrategy

ROOT = Path(__file__).resolve().parents[2]
APPLICATION = ("cdcrecon", "reconciliation", "gdpr", "pipeline")
# "NONE" (no re-check) is also other enumerations' word for nothing (an alert level).
NAMES = {
    value
    for name, value in vars(vocabulary).items()
    if name.isupper() and isinstance(value, str) and value != vocabulary.NO_RECHECK
}


def test_the_models_choices_are_the_vocabulary() -> None:
    assert set(ValidationStrategy.values) == set(vocabulary.STRATEGIES)
    assert set(MismatchType.values) == set(vocabulary.MISMATCH_TYPES)
    assert set(RecheckRule.values) == {
        vocabulary.WRITE_TIME,
        vocabulary.FIXED_DELAY,
        vocabulary.NO_RECHECK,
    }
    assert ResolutionStatus.IN_FLIGHT == vocabulary.IN_FLIGHT


def _definitions(path: Path) -> list[tuple[int, str]]:
    """``NAME = "<a vocabulary string>"`` at a module's or a plain class's top level (a
    Django choices class spells its members as ``NAME = names.X, "label"``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    bodies = [tree.body] + [node.body for node in tree.body if isinstance(node, ast.ClassDef)]
    found = []
    for body in bodies:
        for node in body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                if node.value.value in NAMES:
                    found.append((node.lineno, node.value.value))
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple):
                first = node.value.elts[0] if node.value.elts else None
                if isinstance(first, ast.Constant) and first.value in NAMES:
                    found.append((node.lineno, first.value))
    return found


def test_no_module_spells_a_vocabulary_name_itself() -> None:
    own = ROOT / "reconciliation" / "vocabulary.py"
    again = [
        f"{path.relative_to(ROOT)}:{line}: {value}"
        for package in APPLICATION
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != own and "migrations" not in path.parts
        for line, value in _definitions(path)
    ]
    assert again == []


def test_the_vocabulary_has_each_name_once() -> None:
    values = [v for n, v in vars(vocabulary).items() if n.isupper() and isinstance(v, str)]
    assert len(values) == len(set(values))


@pytest.mark.parametrize(
    ("written", "seconds", "now", "recent"),
    [
        (100.0, 60.0, 159.9, True),
        (100.0, 60.0, 160.0, False),  # exactly the budget old: no longer too recent
        (100.0, 60.0, 200.0, False),
        (300.0, 60.0, 200.0, True),  # a write time in the future is recent
        (100.0, 0.0, 100.0, False),  # no budget: nothing is too recent
    ],
)
def test_written_within(written: float, seconds: float, now: float, recent: bool) -> None:
    assert vocabulary.written_within(written, seconds, now) is recent
