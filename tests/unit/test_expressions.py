"""The ensembles' expression language (JSONata): every construct a declaration uses, the sources
it reads, and how it fails."""

from __future__ import annotations

import pytest

from chorus.model.expressions import (
    MAX_AUDIT_VALUE_CHARS,
    ExpressionError,
    audit_value,
    can_yield_list,
    evaluate,
    fanned_out_field_reads,
    path_texts,
    sources,
    truthy,
)

CLAIM = {
    "estimate": {"output": {"repairCost": 6500, "parts": [{"cost": 4000}, {"cost": 2500}]}},
    "value": {"output": {"marketValue": 9000}},
    "photos": {"output": [{"damage": 0.2}, {"damage": 0.9}, {"damage": 0.4}]},
    "input": {"claimId": "c-1", "country": "DE", "photos": [1, 2, 3]},
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # comparisons and boolean logic
        ("estimate.output.repairCost > 6000", True),
        ("input.country = 'DE' and input.claimId != 'x'", True),
        ("input.country in ['FR', 'IT'] or $not(input.country = 'DE')", False),
        # arithmetic: the insurer's repair-or-total-loss rule
        ("estimate.output.repairCost >= 0.7 * value.output.marketValue", True),
        ("value.output.marketValue - estimate.output.repairCost", 2500),
        ("estimate.output.repairCost / 100 % 7", 2),
        # aggregation
        ("$sum(estimate.output.parts.cost)", 6500),
        ("$max(photos.output.damage)", 0.9),
        ("$count(input.photos)", 3),
        ("$average([1, 2, 3])", 2),
        # filters, conditionals, defaults, strings
        ("$count(photos.output[damage > 0.3])", 2),
        ("estimate.output.repairCost > 9000 ? 'total_loss' : 'repair'", "repair"),
        ("estimate.output.missing ?? -1", -1),
        ("'claim ' & input.claimId", "claim c-1"),
        ("{'decision': 'repair', 'cost': estimate.output.repairCost}", {"decision": "repair", "cost": 6500}),
    ],
)
def test_constructs_evaluate_as_jsonata(expression: str, expected: object) -> None:
    assert evaluate(expression, CLAIM) == expected


def test_expression_yielding_nothing_is_none() -> None:
    assert evaluate("estimate.output.nothing", CLAIM) is None


@pytest.mark.parametrize(
    ("expression", "roots"),
    [
        ("estimate.output.repairCost >= 0.7 * value.output.marketValue", {"estimate", "value"}),
        ("$count(input.photos[$ > 1])", {"input"}),  # names inside a predicate are relative
        ("photos.output[damage > 0.5].damage", {"photos"}),
        ("$map(photos.output, function($p) { $p.damage * 2 })", {"photos"}),
        ("item.pixels", {"item"}),
        ("[1, 2, 3]", set()),
        ("$", {"$"}),
        ("input.photos[$$.value.output.marketValue > 1]", {"input", "$"}),
    ],
)
def test_sources_are_the_leading_names_of_paths(expression: str, roots: set[str]) -> None:
    assert sources(expression) == roots


@pytest.mark.parametrize("expression", ["input.[[", "a +", "$max(", "", "   "])
def test_expression_that_does_not_parse_is_an_error_naming_it(expression: str) -> None:
    with pytest.raises(ExpressionError, match=r"not a valid JSONata expression|empty"):
        sources(expression)


def test_evaluation_error_names_the_expression() -> None:
    with pytest.raises(ExpressionError, match=r"'input.claimId \+ 1' failed"):
        evaluate("input.claimId + 1", CLAIM)


def test_a_function_is_not_a_value() -> None:
    with pytest.raises(ExpressionError, match="not a JSON value"):
        evaluate("function($x) { $x }", CLAIM)


@pytest.mark.parametrize(
    ("expression", "listy"),
    [
        ("input.images", True),
        ("[input.a, input.b]", True),
        ("$filter(input.images, function($i) { $i.ok })", True),
        ("input.n > 3 ? input.a : input.b", True),
        ("3", False),
        ("'images'", False),
        ("input.count > 3", False),
        ("input.a and input.b", False),
        ("input.n * 2", False),
        ("{'a': 1}", False),
    ],
)
def test_for_each_needs_an_expression_that_can_yield_a_list(expression: str, listy: bool) -> None:
    assert can_yield_list(expression) is listy


def test_field_of_one_item_of_a_fanned_out_step_is_found() -> None:
    assert fanned_out_field_reads("batch.output.label", {"batch"}) == ["batch"]
    assert fanned_out_field_reads("$count(batch.output[$exists(label)])", {"batch"}) == []
    assert fanned_out_field_reads("batch.output[0].label", {"batch"}) == []
    assert fanned_out_field_reads("other.output.label", {"batch"}) == []


def test_truthiness_follows_jsonata_boolean_casting() -> None:
    assert [truthy(v) for v in (None, False, 0, "", [], {}, [0, False])] == [False] * 7
    assert [truthy(v) for v in (True, 1, -0.5, "x", [0, 1], {"a": 1})] == [True] * 6


def test_audit_trail_keeps_small_values_and_cuts_large_ones() -> None:
    assert path_texts("$max(svm.output.probabilities) >= 0.9 and input.n") == ["svm.output.probabilities", "input.n"]
    assert audit_value([0.1, 0.9]) == [0.1, 0.9]
    cut = audit_value(list(range(1000)))
    assert isinstance(cut, str) and len(cut) == MAX_AUDIT_VALUE_CHARS and cut.endswith("…")
