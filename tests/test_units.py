"""--units document: per-window verdict inputs averaged within documents."""
import json
from types import SimpleNamespace

import numpy as np

from sinkbench.claims import H1Inputs
from sinkbench.data import documents
from sinkbench.units import by_group, document_index


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
    subject = SimpleNamespace(meta={})
    j = tmp_path / "d.jsonl"
    j.write_text("\n".join(json.dumps({"text": t}) for t in ["one doc", "two", "three"]))
    assert documents(subject, str(j)) == ["one doc", "two", "three"]
    t = tmp_path / "d.txt"
    t.write_text("para one\nstill one\n\npara two\n")
    assert [d.strip() for d in documents(subject, str(t))] == ["para one\nstill one", "para two"]
    assert len(documents(subject, "pydoc")) > 50  # pydoc topics


def test_zoo_text_has_no_documents():
    import pytest

    from sinkbench.errors import SinkbenchError

    with pytest.raises(SinkbenchError, match="--units document"):
        documents(SimpleNamespace(meta={"zoo": {}}), "auto")


def test_dependence_warning_names_the_hypothesis_and_model():
    from sinkbench.results import dependence_warnings

    recs = [{"hypothesis": "H1", "model": "m", "metrics": {"lag1_autocorrelation": v}} for v in (0.5, 0.45, 0.2)]
    recs += [{"hypothesis": "H2", "model": "m", "metrics": {"lag1_autocorrelation": v}} for v in (0.1, -0.2, None)]
    lines = dependence_warnings(recs)
    assert len(lines) == 1 and "H1 on m" in lines[0] and "0.38" in lines[0] and "--units document" in lines[0]


def test_a_bad_units_value_is_one_line():
    import pytest

    from sinkbench.config import check_statistics, make_settings
    from sinkbench.errors import SinkbenchError

    with pytest.raises(SinkbenchError, match=r"^--units 'documents': expected one of window, document$"):
        check_statistics(make_settings(units="documents"))
