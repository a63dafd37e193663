"""--units document: per-window verdict inputs averaged within documents."""
import json
from types import SimpleNamespace

import numpy as np
from sinkbench.hypotheses.h1_dark_tail import H1Inputs
from sinkbench.measure.data import load_documents, load_text, window_documents
from sinkbench.stats.units import by_group, document_index


def test_by_group_averages_every_window_axis():
    base = np.arange(6.0)
    x = H1Inputs(base=base, dark_all=base + 1, random=base, middle=base, base_rest=base, dark_all_rest=base,
                 dark_sink=base, dark_sink_rest=base, sink_mass_base=base, sink_mass_dark_sink=base,
                 random_each=np.stack([base, 10 * base]))
    y = by_group({1: x}, np.array([0, 0, 1, 1, 1, 2]))[1]
    assert y.base.tolist() == [0.5, 3.0, 5.0] and y.random_each.tolist() == [[0.5, 3.0, 5.0], [5.0, 30.0, 50.0]]
    assert (y.dark_all - y.base).tolist() == [1.0, 1.0, 1.0]


def test_windows_map_to_the_document_they_start_in():
    assert document_index([0, 10, 25], [0, 9, 10, 30]).tolist() == [0, 0, 1, 2]


def test_documents_of_each_dataset_kind(tmp_path):
    j = tmp_path / "d.jsonl"
    j.write_text("\n".join(json.dumps({"text": t}) for t in ["one doc", "two", "three"]))
    assert load_documents(str(j))[0] == ["one doc", "two", "three"]
    t = tmp_path / "d.txt"
    t.write_text("para one\nstill one\n\npara two\n")
    assert [d.strip() for d in load_documents(str(t))[0]] == ["para one\nstill one", "para two"]
    assert len(load_documents("pydoc")[0]) > 50  # pydoc topics
    for dataset in (str(j), str(t), "pydoc"):  # the documents are exactly the text load_text reads
        docs, separator = load_documents(dataset)
        assert separator.join(docs) == load_text(dataset)


def test_zoo_text_has_no_documents():
    import pytest

    from sinkbench.errors import SinkbenchError

    with pytest.raises(SinkbenchError, match="--units document"):
        window_documents(SimpleNamespace(meta={"zoo": {}}), "auto", [0])


def test_dependence_warning_names_the_hypothesis_and_model():
    from sinkbench.read.results import dependence_warnings

    recs = [{"hypothesis": "H1", "model": "m", "metrics": {"lag1_autocorrelation": v}} for v in (0.5, 0.45, 0.2)]
    recs += [{"hypothesis": "H2", "model": "m", "metrics": {"lag1_autocorrelation": v}} for v in (0.1, -0.2, None)]
    lines = dependence_warnings(recs)
    assert len(lines) == 1 and "H1 on m" in lines[0] and "0.38" in lines[0] and "--units document" in lines[0]


def test_a_bad_units_value_is_one_line():
    import pytest

    from sinkbench.measure.config import check_statistics, make_settings
    from sinkbench.errors import SinkbenchError

    with pytest.raises(SinkbenchError, match=r"^--units 'documents': expected one of window, document$"):
        check_statistics(make_settings(units="documents"))


def test_windows_are_mapped_to_the_documents_their_first_token_sits_in(tmp_path):
    import re

    class Words:  # a tokenizer of whitespace-separated words, with character offsets
        def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False):
            return {"offset_mapping": [m.span() for m in re.finditer(r"\S+", text)]}

    j = tmp_path / "d.jsonl"
    j.write_text("\n".join(json.dumps({"text": t}) for t in ["a b c", "d e", "f g h i"]))
    subject = SimpleNamespace(meta={}, tokenizer=Words())
    # word 0 'a' and 2 'c' in document 0, 3 'd' in 1, 5 'f' and 8 'i' in 2
    assert window_documents(subject, str(j), [0, 2, 3, 5, 8]) == [0, 0, 1, 2, 2]
    t = tmp_path / "d.txt"
    t.write_text("a b\n\nc d\n \ne\n")
    assert window_documents(subject, str(t), [0, 1, 2, 4]) == [0, 0, 1, 2]
