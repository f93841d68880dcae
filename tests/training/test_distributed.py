"""Two gloo processes (``torchrun``) train like one process with the doubled batch.

``ddp_train.py`` runs every scenario in each of 2 processes with 4 samples per process; the
references run the same code here in one process with 8. The sampler gives process 0 the
first and process 1 the second half of each 8-sample batch of the one-process run (checked
by the reference matching), so each step sees the same samples.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch
from ddp_train import SCENARIOS, run
from tiny import TinyNet, state

HERE = os.path.dirname(os.path.abspath(__file__))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("ddp")
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    command = [
        torchrun, "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), os.path.join(HERE, "ddp_train.py"), str(out),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert [r["world_size"] for r in results] == [2, 2]
    return results


def _assert_same_across_ranks(results: list[dict], name: str) -> None:
    first, second = results[0][name]["state"], results[1][name]["state"]
    for key in first:
        assert torch.equal(first[key], second[key]), f"{name}: {key} differs across ranks"


@pytest.mark.parametrize(
    "name", ["mgda_plain", "mgda_flat", "pcgrad_flat", "rlw_flat", "graddrop_flat", "famo_flat"]
)
def test_two_processes_equal_one_with_doubled_batch(two_processes, name, tmp_path):
    _assert_same_across_ranks(two_processes, name)
    reference = run(name, 8, str(tmp_path))
    initial = state(TinyNet())
    for key, value in reference["state"].items():
        assert not torch.equal(value, initial[key]), f"{key} did not train"
        torch.testing.assert_close(
            two_processes[0][name]["state"][key], value, rtol=1e-5, atol=1e-7, msg=key
        )


def test_batch_norm_buffers_agree_across_ranks(two_processes):
    # Each process normalises its own shard; the running statistics are averaged after the
    # clean pass, so every process holds the same buffers (and therefore the same weights).
    _assert_same_across_ranks(two_processes, "batch_norm")
    buffers = two_processes[0]["batch_norm"]["state"]
    assert int(buffers["norm.num_batches_tracked"]) == 3
    assert not torch.equal(buffers["norm.running_mean"], torch.zeros(6))


def test_non_finite_loss_on_one_rank_skips_on_both(two_processes, tmp_path):
    _assert_same_across_ranks(two_processes, "nan_one_rank")
    assert [r["nan_one_rank"]["skipped"] for r in two_processes] == [1, 1]
    reference = run("nan_one_rank", 8, str(tmp_path))
    assert reference["skipped"] == 1
    for key, value in reference["state"].items():
        torch.testing.assert_close(
            two_processes[1]["nan_one_rank"]["state"][key], value, rtol=1e-5, atol=1e-7
        )


def test_scenarios_cover_random_aggregators():
    names = {options[2]["aggregator"] for options in SCENARIOS.values()}
    assert {"pcgrad", "rlw", "graddrop"} <= names
