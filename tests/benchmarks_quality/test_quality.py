"""The quality harness: the paper protocol starts, resume skips finished runs, tables add up."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

HARNESS = Path(__file__).resolve().parents[2] / "benchmarks" / "quality.py"


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("flatmtl_quality_harness", HARNESS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_paper_protocol_runs_a_few_steps(quality, tmp_path):
    results = tmp_path / "runs.json"
    quality.main(
        [
            "run", "--protocol", "paper", "--source", "sample", "--results", str(results),
            "--variants", "multi_mnist", "--aggregators", "cagrad", "--seeds", "0",
            "--flat_modes", "flat", "--max_steps", "2", "--train_limit", "64",
            "--test_limit", "32",
        ]
    )  # fmt: skip
    (record,) = json.loads(results.read_text())["runs"]
    assert (record["backbone"], record["epochs"], record["protocol"]) == ("resnet18", 200, "paper")
    assert (record["rho_shared"], record["adaptive"], record["joint_norm"]) == (2.0, True, True)
    assert record["max_steps"] == 2 and record["flat"] is True
    argv = record["argv"]
    for flag, value in [
        ("--per_device_train_batch_size", "256"),
        ("--lr_scheduler_type", "constant"),
        ("--learning_rate", "0.001"),
        ("--aggregator_kwargs", '{"c": 0.4}'),
    ]:
        assert argv[argv.index(flag) + 1] == value
    assert set(record["accuracies"]) == {"top_left", "bottom_right"}
    assert all(0.0 <= value <= 1.0 for value in record["accuracies"].values())


def test_resume_skips_a_recorded_run(quality, tmp_path, monkeypatch):
    results = tmp_path / "runs.json"
    finished = quality.make_spec("cpu", "multi_mnist", "mgda", True, 0)
    fake = {**finished, "accuracies": {"top_left": 0.5, "bottom_right": 0.25}, "seconds": 1.0}
    results.write_text(json.dumps({"runs": [fake]}))
    calls = []

    def fake_train(spec, source, mnist_dir, fashion_dir):
        calls.append(spec)
        return {**spec, "accuracies": {"top_left": 0.9, "bottom_right": 0.8}, "seconds": 2.0}

    monkeypatch.setattr(quality, "train_one", fake_train)
    arguments = ["run", "--protocol", "cpu", "--results", str(results), "--variants",
                 "multi_mnist", "--aggregators", "mgda", "--seeds", "0"]  # fmt: skip
    quality.main(arguments)
    assert [(spec["aggregator"], spec["flat"]) for spec in calls] == [("mgda", False)]
    runs = json.loads(results.read_text())["runs"]
    assert runs[0] == fake and len(runs) == 2

    quality.main(arguments)  # everything recorded now: nothing runs
    assert len(calls) == 1
    assert not list(tmp_path.glob("*.tmp"))


def test_a_different_radius_is_a_different_run(quality):
    base = quality.make_spec("cpu", "multi_mnist", "mgda", True, 0)
    assert quality.run_key(base) != quality.run_key(
        quality.make_spec("cpu", "multi_mnist", "mgda", True, 0, rho=0.2)
    )
    plain = quality.make_spec("cpu", "multi_mnist", "mgda", False, 0)
    assert quality.run_key(plain) == quality.run_key(
        quality.make_spec("cpu", "multi_mnist", "mgda", False, 0, rho=0.2)
    )


def test_table_and_plot_from_a_synthetic_file(quality, tmp_path):
    accuracies = {
        ("pcgrad", False): [(0.90, 0.80), (0.92, 0.84), (0.91, 0.83)],
        ("pcgrad", True): [(0.93, 0.85), (0.95, 0.86), (0.94, 0.88)],
        ("imtl", False): [(0.70, 0.60)],
    }
    runs = [
        {**quality.make_spec("cpu", "multi_fashion", name, flat, seed),
         "accuracies": {"top_left": left, "bottom_right": right}, "seconds": 1.0 + flat}
        for (name, flat), values in accuracies.items()
        for seed, (left, right) in enumerate(values)
    ]  # fmt: skip
    runs.append({**runs[0], "protocol": "paper"})  # another protocol never mixes in
    results = tmp_path / "runs.json"
    results.write_text(json.dumps({"runs": runs}))

    table_path = tmp_path / "table.md"
    quality.main(["table", "--results", str(results), "--output", str(table_path)])
    rows = {line.split(" | ")[1]: line for line in table_path.read_text().splitlines()[2:]}
    assert list(rows) == ["pcgrad", "imtl"]  # the grid's order, not the alphabet's

    *accuracy_cells, seconds = rows["pcgrad"].strip(" |").split(" | ")
    assert seconds == "1 / 2"  # mean seconds per run, plain / flat
    numbers = [float(x) for x in re.findall(r"[-+]?\d+\.\d+", " | ".join(accuracy_cells))]
    expected = []
    for flat in (False, True):
        pairs = accuracies[("pcgrad", flat)]
        for column in ([p[0] for p in pairs], [p[1] for p in pairs], [sum(p) / 2 for p in pairs]):
            expected += [100 * statistics.fmean(column), 100 * statistics.stdev(column)]
    plain_avg = statistics.fmean(sum(p) / 2 for p in accuracies[("pcgrad", False)])
    flat_avg = statistics.fmean(sum(p) / 2 for p in accuracies[("pcgrad", True)])
    expected.append(100 * (flat_avg - plain_avg))
    paired = [
        100 * (sum(f) - sum(q)) / 2
        for f, q in zip(accuracies[("pcgrad", True)], accuracies[("pcgrad", False)])
    ]
    expected.append(statistics.stdev(paired))  # same seeds on both sides: paired spread
    assert numbers == pytest.approx(expected, abs=0.006)
    assert "3/3" in rows["pcgrad"] and "1/0" in rows["imtl"]
    assert rows["imtl"].strip(" |").split(" | ")[-2:] == ["–", "1 / –"]  # no flat run

    png = tmp_path / "plot.png"
    quality.main(["plot", "--results", str(results), "--output", str(png)])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _fake_record(spec, left=0.9, right=0.8):
    return {**spec, "accuracies": {"top_left": left, "bottom_right": right}, "seconds": 0.0}


def _options(quality):
    return quality.parse_args(["run", "--source", "sample"])


def test_concurrent_runs_share_one_file_and_train_each_run_once(quality, tmp_path, monkeypatch):
    results = tmp_path / "runs.json"
    specs = [
        quality.make_spec("cpu", "multi_mnist", name, flat, seed)
        for seed in (0, 1) for name in ("mean", "mgda", "pcgrad") for flat in (True, False)
    ]  # fmt: skip
    trained, lock = [], threading.Lock()

    def fake_train(spec, source, mnist_dir, fashion_dir):
        with lock:
            trained.append(quality.run_key(spec))
        time.sleep(0.02)  # long enough that the workers overlap
        return _fake_record(spec, left=spec["seed"] / 10)

    monkeypatch.setattr(quality, "train_one", fake_train)
    counts = []
    workers = [
        threading.Thread(target=lambda: counts.append(
            quality.run_grid(specs, results, _options(quality))))
        for _ in range(3)
    ]  # fmt: skip
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert sorted(trained) == sorted(quality.run_key(spec) for spec in specs)  # once each
    assert sum(counts) == len(specs) and max(counts) < len(specs)  # the work was shared
    runs = json.loads(results.read_text())["runs"]
    assert sorted(quality.run_key(r) for r in runs) == sorted(trained)
    assert all(r["accuracies"]["top_left"] == r["seed"] / 10 for r in runs)
    assert json.loads(quality.claims_path(results).read_text()) == {}


def test_claims_of_live_processes_are_skipped_and_stale_ones_taken(quality, tmp_path):
    results = tmp_path / "runs.json"
    first, second = (quality.make_spec("cpu", "multi_fashion", "imtl", flat, 2)
                     for flat in (True, False))  # fmt: skip
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    dead = {"host": socket.gethostname(), "pid": int(finished.stdout)}
    alive = {"host": socket.gethostname(), "pid": os.getpid()}
    elsewhere = {"host": socket.gethostname() + "-other", "pid": 1}

    claims = {quality._claim_key(first): alive}
    quality.write_json(quality.claims_path(results), claims)
    assert quality.claim_next([first, second], results) == second  # first is being trained

    quality.write_json(quality.claims_path(results), {quality._claim_key(first): elsewhere})
    assert quality.claim_next([first], results) is None  # another host's claim is respected

    quality.write_json(quality.claims_path(results), {quality._claim_key(first): dead})
    assert quality.claim_next([first], results) == first  # its process is gone: take it over
    holder = json.loads(quality.claims_path(results).read_text())[quality._claim_key(first)]
    assert holder == alive


def test_a_failed_run_is_released_and_not_recorded(quality, tmp_path, monkeypatch):
    results = tmp_path / "runs.json"
    spec = quality.make_spec("cpu", "multi_mnist", "cagrad", True, 0)

    def broken_train(spec, source, mnist_dir, fashion_dir):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(quality, "train_one", broken_train)
    with pytest.raises(RuntimeError, match="out of memory"):
        quality.run_grid([spec], results, _options(quality))
    assert quality.read_runs(results) == []
    assert quality.claim_next([spec], results) == spec  # free to be retried


def test_merge_adds_new_runs_keeps_equal_ones_and_refuses_conflicts(quality, tmp_path):
    target, other = tmp_path / "main.json", tmp_path / "other.json"
    shared = _fake_record(quality.make_spec("cpu", "multi_mnist", "mean", False, 0))
    new = _fake_record(quality.make_spec("cpu", "multi_mnist", "mean", True, 0), 0.7, 0.6)
    quality.write_runs(target, [shared])
    quality.write_runs(other, [dict(shared), new])

    quality.main(["merge", "--results", str(target), str(other)])
    assert quality.read_runs(target) == [shared, new]
    assert quality.merge([other], target) == 0  # merging again changes nothing

    quality.write_runs(other, [_fake_record(shared, 0.1, 0.2)])
    with pytest.raises(ValueError, match="already recorded") as error:
        quality.merge([other], target)
    assert str(other) in str(error.value) and "Remove one" in str(error.value)
    assert quality.read_runs(target) == [shared, new]  # untouched by the refused merge

    with pytest.raises(SystemExit, match="not found"):
        quality.main(["merge", "--results", str(target), str(tmp_path / "missing.json")])


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"runs": [', "is not readable as a results file"),
        ("[]", "expected a JSON object"),
        ("{}", "without `runs`"),
        ('{"runs": [{"variant": "multi_mnist"}]}', "record 0 lacks aggregator, flat"),
    ],
)
def test_a_broken_results_file_is_named_in_the_error(quality, tmp_path, content, message):
    broken = tmp_path / "broken.json"
    broken.write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        quality.read_runs(broken)
    assert str(broken) in str(error.value)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--aggregators", "mean", "nosuch"], "unknown aggregator 'nosuch'"),
        (["--rho", "-0.5"], "expected a finite number >= 0, found -0.5"),
        (["--threads", "0"], "expected an integer >= 1, found 0"),
        (["--max_steps", "-1"], "expected an integer >= 1, found -1"),
    ],
)
def test_bad_run_arguments_fail_before_any_training(quality, capsys, flags, message):
    with pytest.raises(SystemExit):
        quality.parse_args(["run", *flags])
    assert message in capsys.readouterr().err


def test_table_says_which_records_it_leaves_out(quality, tmp_path, caplog):
    results = tmp_path / "runs.json"
    smoke = quality.make_spec("cpu", "multi_mnist", "mean", True, 0, max_steps=3)
    real = quality.make_spec("cpu", "multi_mnist", "mean", False, 0)
    quality.write_runs(results, [_fake_record(smoke), _fake_record(real)])
    with caplog.at_level("WARNING", logger=quality.logger.name):
        text = quality.markdown_table(quality.read_runs(results), "cpu")
    assert "1 'cpu' record(s) left out" in caplog.text
    assert "| 1/0 |" in text  # the plain run counts, the smoke run does not

    with pytest.raises(SystemExit, match="does not exist"):
        quality.main(["table", "--results", str(tmp_path / "missing.json")])


def test_a_run_left_with_claims_of_others_says_so(quality, tmp_path, caplog):
    results = tmp_path / "runs.json"
    spec = quality.make_spec("cpu", "multi_mnist", "mean", True, 0)
    other = {"host": socket.gethostname() + "-other", "pid": 7}
    quality.write_json(quality.claims_path(results), {quality._claim_key(spec): other})
    with caplog.at_level("INFO", logger=quality.logger.name):
        assert quality.run_grid([spec], results, _options(quality)) == 0
    assert "1 run(s) are still claimed" in caplog.text and other["host"] in caplog.text
    assert str(quality.claims_path(results)) in caplog.text
