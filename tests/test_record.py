"""The typed shoplora.json records: they read and write the JSON ShopLoRA has always written, keep keys they do not
know, and refuse a damaged field by name."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from adapters import AdapterFileError, AdapterStore, load_adapter
from adapters.files import RECORD_FILE, read_lora_dir
from adapters.init_catalog import shipped_inits
from adapters.record import AdapterRecord, InitRecord, RecordError, record_from_json
from adapters.training import InnerLoop

# shoplora.json of adapters saved by the code before typed records (adapt; adapt + two updates, one a new scenario)
WRITTEN_BEFORE = Path(__file__).parent / "data" / "records"


def written_before(name: str) -> dict:
    return json.loads((WRITTEN_BEFORE / name).read_text())


@pytest.mark.parametrize("name", ["adapter.json", "adapter-updated.json"])
def test_a_record_written_before_reads_and_writes_back_the_same_json(name):
    data = written_before(name)
    record = record_from_json(copy.deepcopy(data))
    assert isinstance(record, AdapterRecord) and record.extra == {}
    assert record.to_json() == data


@pytest.mark.parametrize("name", sorted(shipped_inits()))
def test_a_shipped_init_reads_and_writes_back_the_same_json(name):
    data = json.loads((shipped_inits()[name] / RECORD_FILE).read_text())
    record = record_from_json(copy.deepcopy(data))
    assert isinstance(record, InitRecord) and record.extra == {}
    assert record.tasks and record.base_fingerprint and record.inner_loop.steps == data["inner_loop"]["steps"]
    # the inner loop is read into InnerLoop, which writes every setting (the shipped files predate some, same values)
    data["inner_loop"] = InnerLoop.from_dict(data["inner_loop"]).to_dict()
    assert record.to_json() == data


def test_the_fits_read_as_attributes():
    adapted = record_from_json(written_before("adapter.json"))
    assert adapted.fit.steps_run == 2 and len(adapted.fit.train_loss) == 2 and adapted.fit.inner_loop.steps == 2
    assert adapted.latest_fit is adapted.fit and adapted.metrics == adapted.fit.metrics != {}
    assert [row.scenario for row in adapted.replay] == ["intents"] * len(adapted.replay)
    updated = record_from_json(written_before("adapter-updated.json"))
    assert [update.scenario for update in updated.updates] == ["sentiment", "sentiment"]
    assert updated.latest_fit is updated.updates[-1].fit and updated.metrics == updated.updates[-1].fit.metrics
    # the file keeps only the latest metrics at the top level: adapt's own were replaced by the first update's
    assert updated.fit.steps_run == 2 and updated.fit.metrics == {}
    assert updated.scenarios["intents"].weights == "scenarios/intents" and updated.scenarios["sentiment"].weights == "."
    assert updated.n_examples == sum(u.n_examples for u in updated.updates) + adapted.n_examples


def test_keys_this_version_does_not_know_are_kept():
    data = written_before("adapter-updated.json")
    data["reviewed_by"] = "ana"  # a newer version's key, or a note added by hand
    data["updates"][0]["tokens_seen"] = 1234
    data["scenarios"]["intents"]["owner"] = "support"
    record = record_from_json(copy.deepcopy(data))
    assert record.extra == {"reviewed_by": "ana"} and record.updates[0].extra == {"tokens_seen": 1234}
    assert record.to_json() == data


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: d.update(temperature="hot"), "'temperature' must be a number, got 'hot'"),
        (lambda d: d.update(steps_run=2.5), "'steps_run' must be a whole number"),
        (lambda d: d.update(contextual_calibration=1), "'contextual_calibration' must be true or false"),
        (lambda d: d.pop("spec"), "has no 'spec'"),
        (lambda d: d["spec"].update(colour="red"), "'spec' is not valid"),
        (lambda d: d["replay"][3].pop("output"), r"replay\[3\] has no 'output'"),
        (lambda d: d["updates"][1].update(train_loss="low"), r"updates\[1\]: 'train_loss' must be a list"),
        (lambda d: d.update(train_loss=[0.5, "low"]), "'train_loss' must be a list, each item a number"),
        (lambda d: d["scenarios"]["intents"].update(weights=7), r"scenarios\['intents'\]: 'weights' must be a text"),
        (lambda d: d.update(kind="dataset"), "'kind' must be one of adapter, init"),
    ],
)
def test_a_damaged_field_is_refused_by_name_with_what_to_do(change, named):
    data = written_before("adapter-updated.json")
    change(data)
    with pytest.raises(RecordError, match=named) as caught:
        record_from_json(data, where="acme/shoplora.json")
    assert str(caught.value).startswith("acme/shoplora.json")
    assert "restore a previous version of the folder, or save or train it again" in str(caught.value)


def test_an_adapter_folder_written_before_loads_and_a_damaged_one_is_an_adapter_file_error(tiny_base, tmp_path):
    from adapters import Adapter
    from adapters.lora import LoraSettings

    spec = record_from_json(written_before("adapter.json")).spec
    store = AdapterStore(tmp_path)
    fresh = Adapter(tiny_base, spec, None, LoraSettings(r=4), AdapterRecord(spec=spec))
    folder = store.save(fresh, "old")
    fresh.unload()
    data = {**written_before("adapter.json"), "base_fingerprint": tiny_base.fingerprint}
    del data["weights_sha256"]  # the weights are this test's, not the ones the record was saved with
    (folder / RECORD_FILE).write_text(json.dumps(data))
    adapter = load_adapter("old", store=store, base=tiny_base)
    assert adapter.record.fit.steps_run == 2 and adapter.temperature == data["temperature"]
    assert adapter.scenarios == ["intents"] and adapter.predict(["where is my parcel 3"])[0].label in spec.labels
    adapter.unload()
    (folder / RECORD_FILE).write_text(json.dumps({**data, "n_examples": "twenty"}))
    with pytest.raises(AdapterFileError, match=r"old/shoplora.json: 'n_examples' must be a whole number"):
        read_lora_dir(folder)
    assert "'n_examples' must be a whole number" in store.list()[0]["error"]  # listed with its problem, not hidden
