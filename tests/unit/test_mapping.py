"""Rendering ensemble mappings: `{{ expression }}` strings replaced by values from earlier outputs."""

from __future__ import annotations

from typing import Any

import pytest

from chorus.core.errors import InvalidInput
from chorus.model.mapping import MappingError, RenderResult, render_mapping

SVM_OUTPUT = {"label": 3, "probabilities": [0.0, 0.1, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]}
REQUEST_INPUT = {"pixels": [0] * 64, "meta": {"source": "scanner"}, "output": "a field named output"}


class Documents:
    """A `resolve` callback over fixed documents that records which roots were read."""

    def __init__(self, **documents: Any) -> None:
        self.documents = documents
        self.calls: list[str] = []

    def __call__(self, root: str) -> Any:
        self.calls.append(root)
        return self.documents.get(root)


def s3_uri(root: str) -> str:
    return f"s3://payloads/outputs/{root}/output"


def test_step_field_is_read_from_the_step_output() -> None:
    # Given a mapping that reads the svm step's probabilities
    mapping = {"svm": "{{ svm.output.probabilities }}"}
    # When it is rendered
    result = render_mapping(mapping, Documents(svm=SVM_OUTPUT))
    # Then the value is the field of svm's output document
    assert result == RenderResult(document={"svm": SVM_OUTPUT["probabilities"]})


def test_input_field_is_read_from_the_request_input() -> None:
    # Given a mapping that reads a nested field of the request input
    mapping = {"source": "{{ input.meta.source }}"}
    # When it is rendered
    result = render_mapping(mapping, Documents(input=REQUEST_INPUT))
    # Then the value comes from the input document
    assert result.document == {"source": "scanner"}


def test_jsonata_beyond_plain_fields_is_evaluated() -> None:
    # Given expressions with a positional filter, arithmetic and an aggregation
    mapping = {
        "top": "{{ svm.output.probabilities[[2..3]] }}",
        "scaled": "{{ svm.output.label * 0.5 + 1 }}",
        "best": "{{ $max(svm.output.probabilities) }}",
    }
    # When it is rendered
    result = render_mapping(mapping, Documents(svm=SVM_OUTPUT))
    # Then JSONata semantics apply
    assert result.document == {"top": [0.0, 0.9], "scaled": 2.5, "best": 0.9}


@pytest.mark.parametrize(
    ("mapping", "root"),
    [("{{ input }}", "input"), ("{{ svm }}", "svm"), ("{{ svm.output }}", "svm"), ("{{svm}}", "svm")],
)
def test_whole_payload_mapping_passes_the_payload_through_unread(mapping: str, root: str) -> None:
    # Given a mapping that is exactly one whole-payload reference
    documents = Documents(input=REQUEST_INPUT, svm=SVM_OUTPUT)
    # When it is rendered
    result = render_mapping(mapping, documents)
    # Then the caller is told to pass that root's S3 object on, and nothing was downloaded
    assert result == RenderResult(passthrough=root)
    assert documents.calls == []


def test_nested_whole_payload_reference_renders_to_the_payload_uri() -> None:
    # Given a larger mapping that embeds the request input as a whole
    mapping = {"image": "{{ input }}", "hint": "{{ svm.output.label }}"}
    documents = Documents(svm=SVM_OUTPUT)
    # When it is rendered
    result = render_mapping(mapping, documents, location=s3_uri)
    # Then the whole payload becomes its S3 URI and only svm's document is read
    assert result.document == {"image": "s3://payloads/outputs/input/output", "hint": 3}
    assert documents.calls == ["svm"]


def test_nested_whole_payload_reference_without_a_location_callback_is_an_error() -> None:
    # Given a nested whole-payload reference and no `location` callback
    mapping = {"image": "{{ svm }}"}
    # When it is rendered, Then the error names the reference
    with pytest.raises(MappingError, match=r"\{\{ svm \}\}"):
        render_mapping(mapping, Documents())


def test_expression_that_matches_nothing_is_an_error_naming_it() -> None:
    # Given a reference to a field the svm output does not have
    mapping = {"x": "{{ svm.output.scores }}"}
    # When it is rendered, Then MappingError names the expression and the root
    with pytest.raises(MappingError, match=r"svm\.output\.scores.*matched nothing"):
        render_mapping(mapping, Documents(svm=SVM_OUTPUT))


def test_step_field_without_output_segment_is_an_error_with_a_hint() -> None:
    # Given a reference that forgets the `.output` segment of a step
    mapping = {"x": "{{ svm.probabilities }}"}
    # When it is rendered, Then the error explains how step outputs are addressed
    with pytest.raises(MappingError, match=r"svm\.output\.<field>"):
        render_mapping(mapping, Documents(svm=SVM_OUTPUT))


def test_field_holding_null_counts_as_missing() -> None:
    # Given an output whose referenced field is JSON null
    mapping = {"x": "{{ svm.output.label }}"}
    # When it is rendered, Then it is an error rather than a silent null
    with pytest.raises(MappingError, match="matched nothing"):
        render_mapping(mapping, Documents(svm={"label": None}))


def test_missing_document_is_an_error_naming_the_root() -> None:
    # Given a resolver that has no document for the referenced step
    mapping = {"x": "{{ forest.output.label }}"}
    # When it is rendered, Then the error names the root
    with pytest.raises(MappingError, match="'forest'"):
        render_mapping(mapping, Documents())


def test_each_used_root_is_resolved_once_and_unused_roots_never() -> None:
    # Given a mapping reading two fields of svm and none of forest or input
    mapping = {"a": "{{ svm.output.label }}", "b": ["{{ svm.output.probabilities[3] }}"]}
    documents = Documents(svm=SVM_OUTPUT, forest={"label": 1}, input=REQUEST_INPUT)
    # When it is rendered
    render_mapping(mapping, documents)
    # Then svm was read once, nothing else was read
    assert documents.calls == ["svm"]


def test_values_that_are_not_exactly_one_reference_pass_through_unchanged() -> None:
    # Given numbers, booleans, null and strings that merely contain braces
    mapping = {"n": 1.5, "b": True, "z": None, "s": "label: {{ svm.output.label }}", "t": "{{ }", "l": [1, "x"]}
    documents = Documents(svm=SVM_OUTPUT)
    # When it is rendered
    result = render_mapping(mapping, documents)
    # Then nothing changed and nothing was read (no string interpolation)
    assert result.document == mapping
    assert documents.calls == []


def test_input_output_is_a_field_of_the_input_not_a_whole_payload() -> None:
    # Given `{{ input.output }}` (a field called "output" of the request input)
    mapping = "{{ input.output }}"
    # When it is rendered
    result = render_mapping(mapping, Documents(input=REQUEST_INPUT))
    # Then the field is read instead of passing the input through
    assert result == RenderResult(document="a field named output")


def test_mapping_error_is_an_invalid_input_error() -> None:
    # Given / When a mapping fails, Then callers mapping InvalidInput (422) handle it too,
    # and Step Functions sees the stable error name "MappingError"
    assert issubclass(MappingError, InvalidInput)
    assert MappingError("x").code == "mapping_error"
