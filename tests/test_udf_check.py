"""user_defined_funcs.py is checked with ast: stubs and wrong signatures are refused, never imported."""

from __future__ import annotations

import pytest
from conftest import MINIMAL

from pipelines.spec.errors import SpecError
from pipelines.spec.load import load


@pytest.mark.parametrize("body,expected", [
    ("def load_model(source, labels, init):\n    pass\n", "load_model: is a stub"),
    ("def encode_data(batch, tokenizer, model):\n    ...\n", "encode_data: is a stub"),
    ("def get_dataset_features(labels):\n    raise NotImplementedError\n", "is a stub"),
    ("def ordered_model_input_keys(tokenizer):\n    '''Only a docstring.'''\n", "is a stub"),
    ("def encode_data(batch):\n    return batch\n", "takes 1 positional parameters"),
    ("async def load_model(a, b, c):\n    return 1\n", "plain def"),
    ("def broken(:\n", "cannot parse"),
])
def test_bad_user_functions_are_refused(write_spec, body, expected):
    with pytest.raises(SpecError) as info:
        load(write_spec(udf=body))
    problem = info.value.problems[0]
    assert expected in str(problem)
    assert problem.file.endswith("user_defined_funcs.py") and problem.line >= 1


def test_stub_of_a_disabled_step_is_allowed(write_spec):
    udf = "def reconcile_data(raw_dir, text_column, label_column):\n    pass\n"
    assert load(write_spec(MINIMAL + "steps: {reconcile: false}\n", udf=udf)).spec.steps.reconcile is False


def test_user_file_is_never_imported(write_spec, tmp_path):
    marker = tmp_path / "imported"
    udf = f"open({str(marker)!r}, 'w').write('x')\ndef encode_data(batch, tokenizer, model):\n    return batch\n"
    load(write_spec(udf=udf))
    assert not marker.exists()
