"""Read raw records (dicts) and where each one came from, from files, `save_to_disk` folders or the HF Hub.

Nothing here knows about preference formats. A problem with one record (a truncated JSONL line, a CSV row
with the wrong number of cells) is *yielded* as a `DataError` so the caller can skip it and read on; a problem
with the whole source (missing file, invalid .json document, truncated gzip stream) is raised.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rewardkit.data.errors import DataError
from rewardkit.errors import hub_offline_note

SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")
# "owner/name" or "owner/name:split": anything else that does not exist locally is a missing file.
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+(:[\w.-]+)?$")


@dataclass(frozen=True)
class RawRecord:
    data: dict[str, Any]
    location: str  # "pairs.jsonl line 12" or "pairs.json[11]": what error messages and reports call it
    subset: str | None = None  # the key of a dict-of-lists .json file (e.g. EvalBiasBench's categories)


Item = RawRecord | DataError


def read_records(source: str | Path) -> Iterator[Item]:
    """Yield every record of `source`: a file, a `save_to_disk` folder or a Hub id `owner/name[:split]`."""
    path = Path(source)
    if path.is_dir():
        return _read_saved_dataset(path)
    if path.is_file():
        return _read_file(path)
    name = str(source)
    if is_hub_dataset_id(name):
        return _read_hub(name)
    raise DataError(name, "no such file or directory", reason="not found")


def is_hub_dataset_id(name: str) -> bool:
    """`owner/name` or `owner/name:split` that names no file type: read from the hub when it is not a local path."""
    return bool(_HUB_ID.match(name)) and not name.lower().removesuffix(".gz").endswith(SUFFIXES)


def _read_file(path: Path) -> Iterator[Item]:
    name = path.name.lower()
    compressed = name.endswith(".gz")
    suffix = Path(name.removesuffix(".gz")).suffix
    if suffix in (".jsonl", ".ndjson"):
        return _guard(path, _read_jsonl(path, compressed))
    if suffix == ".json":
        return _guard(path, _read_json(path, compressed))
    if suffix == ".csv":
        return _guard(path, _read_csv(path, compressed))
    if suffix == ".parquet" and not compressed:
        return _guard(path, _read_parquet(path))
    known = ", ".join(SUFFIXES) + " (and .gz of the text formats)"
    raise DataError(str(path), f"unsupported file type (expected one of {known})", reason="unsupported file")


def _guard(path: Path, items: Iterator[Item]) -> Iterator[Item]:
    """Turn low-level read failures (truncated gzip, bad bytes, broken Parquet) into a DataError."""
    try:
        yield from items
    except DataError:
        raise
    except (OSError, EOFError, ValueError, csv.Error) as error:
        raise DataError(str(path), f"cannot read file: {error}", reason="unreadable file") from error


def _open(path: Path, compressed: bool, binary: bool = False) -> IO[Any]:
    mode = "rb" if binary else "rt"
    # utf-8-sig: tolerate the byte-order mark that spreadsheet exports put at the start of CSV files.
    text = {} if binary else {"encoding": "utf-8-sig", "newline": ""}
    return gzip.open(path, mode, **text) if compressed else open(path, mode, **text)


def _read_jsonl(path: Path, compressed: bool) -> Iterator[Item]:
    with _open(path, compressed, binary=True) as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue  # a blank line (often the last) holds no record
            where = f"{path} line {number}"
            try:
                data = json.loads(line.rstrip(b"\r\n"))  # else a cut-off string "contains" the newline
            except ValueError as error:  # JSONDecodeError, or bytes that are not UTF-8
                yield DataError(
                    where, f"invalid JSON ({error}); is the line truncated?", reason="invalid JSON"
                )
                continue
            yield _as_record(data, where)


def _read_json(path: Path, compressed: bool) -> Iterator[Item]:
    with _open(path, compressed) as file:
        text = file.read()
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        hint = "; if it holds one JSON object per line, name it .jsonl" if error.msg == "Extra data" else ""
        raise DataError(
            str(path),
            f"invalid JSON at character {error.pos} (line {error.lineno}, column {error.colno}): {error.msg}"
            f"; is the file truncated?{hint}",
            reason="invalid JSON",
        ) from None
    for prefix, subset, records in _record_lists(document, path):
        for index, data in enumerate(records):
            yield _as_record(data, f"{prefix}[{index}]", subset)


def _record_lists(document: Any, path: Path) -> list[tuple[str, str | None, list[Any]]]:
    """(location prefix, subset, records) for each list of records in a .json document: a list, a dict
    wrapping one list (`{"data": [...]}`), or a dict of named lists (`{"length bias": [...], ...}`) whose
    names become each record's subset."""
    if isinstance(document, list):
        return [(str(path), None, document)]
    if isinstance(document, dict):
        lists = [(key, value) for key, value in document.items() if isinstance(value, list)]
        if len(lists) == 1:
            return [(f"{path}[{key!r}]", None, value) for key, value in lists]
        if lists and len(lists) == len(document):
            return [(f"{path}[{key!r}]", key, value) for key, value in lists]
        keys = ", ".join(map(str, document)) or "none"
        raise DataError(
            str(path),
            f"expected a list of records, or a dict of lists of records; found a dict with keys: {keys}",
            reason="unsupported JSON layout",
        )
    raise DataError(
        str(path),
        f"expected a list of records, found a JSON {type(document).__name__}",
        reason="unsupported JSON layout",
    )


def _read_csv(path: Path, compressed: bool) -> Iterator[Item]:
    # Responses are often longer than csv's default 128 KiB field limit; raising a limit harms nothing.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    with _open(path, compressed) as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if header is None:
            return
        start = reader.line_num + 1  # a row can span lines (quoted newlines): report the line it starts on
        for row in reader:
            where = f"{path} line {start}"
            start = reader.line_num + 1
            if not row:
                continue
            if len(row) != len(header):
                yield DataError(
                    where,
                    f"has {len(row)} cells, expected {len(header)} ({', '.join(header)})",
                    reason="wrong number of cells",
                )
                continue
            yield RawRecord(dict(zip(header, row, strict=True)), where)


def _read_parquet(path: Path) -> Iterator[Item]:
    import pyarrow.parquet as pq  # lazy: only Parquet needs it

    index = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for data in batch.to_pylist():
            yield _as_record(data, f"{path}[{index}]")
            index += 1


def _read_saved_dataset(path: Path) -> Iterator[Item]:
    if not any((path / name).exists() for name in ("state.json", "dataset_dict.json")):
        raise DataError(
            str(path),
            "is a directory but not a dataset saved with datasets' save_to_disk (no state.json)",
            reason="unsupported directory",
        )
    datasets = _import_datasets(str(path))
    dataset = datasets.load_from_disk(str(path))
    if isinstance(dataset, datasets.DatasetDict):
        splits = ", ".join(f"{path / split}" for split in dataset)
        raise DataError(str(path), f"holds several splits; load one of: {splits}", reason="ambiguous split")
    return _iter_dataset(dataset, str(path))


def _read_hub(name: str) -> Iterator[Item]:
    dataset_id, _, split = name.partition(":")
    datasets = _import_datasets(name)
    try:
        dataset = datasets.load_dataset(dataset_id, split=split or "train")
    except Exception as error:  # offline, unknown id, unknown split, gated: all mean "cannot get it"
        raise DataError(
            name,
            f"does not exist locally and could not be loaded from the Hugging Face Hub "
            f"({type(error).__name__}: {error}); check the path, the dataset id, or your connection"
            f"{hub_offline_note()}",
            reason="not found",
        ) from error
    return _iter_dataset(dataset, f"{dataset_id}:{split or 'train'}")


def _iter_dataset(dataset: Any, name: str) -> Iterator[Item]:
    for index, data in enumerate(dataset):
        yield _as_record(data, f"{name}[{index}]")


def _import_datasets(name: str) -> Any:
    try:
        import datasets  # lazy: optional dependency, and slow to import
    except ImportError:
        raise DataError(
            name, "needs the 'datasets' package: pip install 'rewardkit[hub]'", reason="missing dependency"
        ) from None
    return datasets


def _as_record(data: Any, where: str, subset: str | None = None) -> Item:
    if not isinstance(data, dict):
        return DataError(where, f"expected a JSON object, got {type(data).__name__}", reason="not an object")
    return RawRecord(data, where, subset)
