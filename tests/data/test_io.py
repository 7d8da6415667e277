"""Reading sources: every file type, save_to_disk folders, Hub ids, and broken files."""

from __future__ import annotations

import csv
import gzip
import json
import re

import pytest

from rewardkit.data import DataError, load_preferences


def _summary(dataset):
    return [(g.prompt, g.responses, g.subset) for g in dataset]


EXPECTED = [
    ("What is 2+2?", ["4", "5"], None),
    ("Capital of France?", ["Paris", "Lyon"], "geo"),
    ("Say hi", ["Hi!", "Go away."], None),
]


def test_jsonl_and_locations(write_jsonl, pairs):
    path = write_jsonl(pairs)
    data = load_preferences(path)
    assert _summary(data) == EXPECTED
    assert [g.source for g in data] == [f"{path} line {n}" for n in (1, 2, 3)]
    assert data[0].comparisons[0].margin == 1.5 and data[2].comparisons[0].weight == 0.5
    assert (data.report.records_read, data.report.groups, data.report.comparisons) == (3, 3, 3)


@pytest.mark.parametrize("layout", ["list", "wrapped"])
def test_json_list_or_wrapped_list(tmp_path, pairs, layout):
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(pairs if layout == "list" else {"version": 2, "data": pairs}))
    data = load_preferences(path)
    assert _summary(data) == EXPECTED
    assert data[1].source == (f"{path}[1]" if layout == "list" else f"{path}['data'][1]")


def test_json_dict_of_lists_gives_subsets(tmp_path, pairs):
    path = tmp_path / "by_category.json"
    path.write_text(json.dumps({"math": pairs[:1], "chat": [pairs[2]]}))
    data = load_preferences(path)
    assert [(g.subset, g.source) for g in data] == [
        ("math", f"{path}['math'][0]"),
        ("chat", f"{path}['chat'][0]"),
    ]


@pytest.mark.parametrize("name", ["pairs.jsonl.gz", "pairs.json.gz"])
def test_gzip(tmp_path, pairs, name):
    path = tmp_path / name
    with gzip.open(path, "wt", encoding="utf-8") as file:
        if name.startswith("pairs.jsonl"):
            file.writelines(json.dumps(p) + "\n" for p in pairs)
        else:
            json.dump(pairs, file)
    assert _summary(load_preferences(path)) == EXPECTED


def test_csv_numbers_and_multiline_cells(tmp_path, pairs):
    path = tmp_path / "pairs.csv"
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, ["prompt", "chosen", "rejected", "margin", "subset"])
        writer.writeheader()
        for p in pairs:
            writer.writerow({k: p.get(k, "") for k in writer.fieldnames})
        writer.writerow({"prompt": "two\nlines", "chosen": "a", "rejected": "b", "margin": "", "subset": ""})
        writer.writerow({"prompt": "p", "chosen": "", "rejected": "b", "margin": "", "subset": ""})
    data = load_preferences(path)
    assert _summary(data)[:3] == EXPECTED
    assert data[0].comparisons[0].margin == 1.5  # "1.5" from the CSV cell
    assert data[3].prompt == "two\nlines" and data[3].source == f"{path} line 5"
    # An empty cell is an empty response: kept and counted; the row before spans two lines, so this is line 7.
    assert data[4].responses == ["", "b"] and data[4].source == f"{path} line 7"
    assert data.report.empty_responses == 1 and "1 empty responses (kept" in data.report.summary()


def test_parquet(tmp_path, pairs):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist([{**p, "subset": p.get("subset")} for p in pairs]), path)
    data = load_preferences(path)
    assert _summary(data) == EXPECTED
    assert data[2].source == f"{path}[2]"


def test_save_to_disk_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [
        {
            "chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
            "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "What?"}],
        },
    ] * 2
    folder = tmp_path / "saved"
    datasets.Dataset.from_list(rows).save_to_disk(str(folder))
    data = load_preferences(folder)
    assert len(data) == 2 and data[1].source == f"{folder}[1]"
    assert data[0].prompt == [{"role": "user", "content": "Hi"}]
    assert data[0].responses == [
        [{"role": "assistant", "content": "Hello!"}],
        [{"role": "assistant", "content": "What?"}],
    ]


def test_hub_id_offline_gives_clear_error(monkeypatch):
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants

    # The flag is read at import time, and datasets may already be imported: patch the constants too.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        DataError, match="does not exist locally and could not be loaded from the Hugging Face Hub"
    ):
        load_preferences("no-such-owner/no-such-dataset:test")


def test_missing_local_file_is_not_sent_to_the_hub(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_preferences("data/missing.jsonl")


def test_truncated_jsonl_line(write_jsonl, pairs):
    path = write_jsonl([pairs[0], json.dumps(pairs[1])[:25], pairs[2]])
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))} line 2: invalid JSON .*truncated"):
        load_preferences(path)
    data = load_preferences(path, on_error="skip")
    assert len(data) == 2 and data.report.skipped == {"invalid JSON": 1}


def test_truncated_json_file_names_character_position(tmp_path, pairs):
    path = tmp_path / "pairs.json"
    text = json.dumps(pairs)
    path.write_text(text[:-30])
    with pytest.raises(
        DataError, match=rf"^{re.escape(str(path))}: invalid JSON at character \d+ .*truncated"
    ):
        load_preferences(path)


def test_unsupported_file_type(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("hello")
    with pytest.raises(DataError, match=r"unsupported file type \(expected one of .jsonl"):
        load_preferences(path)


def test_non_object_record(write_jsonl, pairs):
    path = write_jsonl([pairs[0], "[1, 2]"])
    with pytest.raises(DataError, match=rf"{re.escape(str(path))} line 2: expected a JSON object, got list"):
        load_preferences(path)
