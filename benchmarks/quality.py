"""Accuracy of every aggregator with and without flat regions on the Multi-MNIST family.

Each run trains ``examples/multi_mnist.py`` once (one variant, aggregator, flat mode and seed)
under a named protocol and appends one record to ``benchmarks/results/multi_mnist.json``. A
run whose key (variant, aggregator, flat, seed, rho_shared, rho_task, adaptive, epochs,
protocol, and any smoke-test limits) is already recorded is skipped, and the file is
rewritten atomically after every run, so a grid can be stopped and resumed, or run in pieces.
Several ``run`` processes may share one results file (one per core, say): each claims the next
free run under a file lock, so no run is trained twice. Files from other machines are combined
with ``merge``.

    python benchmarks/quality.py run --protocol cpu --variants multi_mnist --seeds 0
    python benchmarks/quality.py merge elsewhere.json   # into results/multi_mnist.json
    python benchmarks/quality.py sweep --rhos 0.01 0.05 0.2   # writes rho_sweep.json
    python benchmarks/quality.py table    # Markdown: mean +- std over seeds, flat - plain
    python benchmarks/quality.py plot     # bar plot PNG

Protocols (every setting is passed to the example explicitly; its own defaults never apply):

``cpu``
    LeNet (the Pareto-MTL shapes) on the full 120k / 20k composites built from the IDX files
    (``--mnist_dir`` / ``--fashion_dir``; by default ``shared/data/`` beside the checkout),
    2 epochs, Adam (no weight decay) 4e-3 after 100 warm-up steps with cosine decay to 0 (at the
    authors' 1e-3 constant, LeNet is still far from converged after 2 epochs), batch 256, no
    clipping; SAM with one radius 0.01 for the shared and the task parts, separate norms (the
    paper's Algorithm 1); the radius was chosen by ``sweep`` (``results/rho_sweep.json``).
``paper``
    The authors' Multi-MNIST settings: ResNet18 (7x7 one-channel stem, fc 512->100, heads
    100->10), Adam 1e-3 constant, no weight decay, batch 256, 200 epochs, no clipping; ASAM
    with rho 2 and one joint norm over the shared part and the task's head (what their code
    ran); CAGrad c = 0.4. Test accuracy after the last epoch is recorded (their code kept the
    best epoch by test accuracy, which is selection on the test set).

Runs use one CPU thread by default (``--threads``): the machine is shared.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import socket
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from flatmtl.aggregation import AGGREGATORS as REGISTERED_AGGREGATORS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "multi_mnist.py"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
RESULTS = RESULTS_DIR / "multi_mnist.json"
SWEEP = RESULTS_DIR / "rho_sweep.json"
SHARED_DATA = ROOT.parent / "shared" / "data"  # the IDX files, when a checkout sits beside it
DEFAULT_MNIST_DIR = str(SHARED_DATA / "mnist")
DEFAULT_FASHION_DIR = str(SHARED_DATA / "fashion-mnist")

VARIANTS = ("multi_mnist", "multi_fashion", "multi_fashion_and_mnist")
AGGREGATORS = ("mean", "mgda", "pcgrad", "cagrad", "imtl", "nashmtl", "fairgrad")
TASKS = ("top_left", "bottom_right")
FLAT_MODES = ("flat", "plain")
KEY_FIELDS = (
    "variant", "aggregator", "flat", "seed", "rho_shared", "rho_task", "adaptive", "epochs",
    "protocol", "max_steps", "train_limit", "test_limit",
)  # fmt: skip

# Settings common to both protocols: Adam without weight decay, batch 256, no clipping, one
# evaluation on the test split at the end, nothing saved but the final model (in a temp dir).
COMMON = [
    "--optim", "adamw_torch",
    "--weight_decay", "0",
    "--per_device_train_batch_size", "256",
    "--per_device_eval_batch_size", "1000",
    "--max_grad_norm", "0",
    "--flat_strategy", "individual",
    "--flat_every", "1",
    "--batched_task_grads", "false",
    "--copies", "2",
    "--eval_strategy", "no",
    "--save_strategy", "no",
    "--logging_steps", "100",
    "--report_to", "none",
    "--dataloader_num_workers", "0",
    "--disable_tqdm", "true",
    "--use_cpu",
]  # fmt: skip

PROTOCOLS: dict[str, dict[str, Any]] = {
    "cpu": {
        "backbone": "lenet",
        "epochs": 2,
        "learning_rate": 4e-3,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 100,
        "rho_shared": 0.01,
        "rho_task": 0.01,
        "adaptive": False,
        "joint_norm": False,
        "aggregator_kwargs": {"cagrad": {"c": 0.4}},
    },
    "paper": {
        "backbone": "resnet18",
        "epochs": 200,
        "learning_rate": 1e-3,
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "rho_shared": 2.0,
        "rho_task": 2.0,
        "adaptive": True,
        "joint_norm": True,
        "aggregator_kwargs": {"cagrad": {"c": 0.4}},
    },
}

logger = logging.getLogger("flatmtl.benchmarks.quality")


def load_example() -> Any:
    """The example script as a module (its ``main(argv)`` returns the test accuracies)."""
    spec = importlib.util.spec_from_file_location("multi_mnist_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def make_spec(
    protocol: str,
    variant: str,
    aggregator: str,
    flat: bool,
    seed: int,
    rho: float | None = None,
    epochs: int | None = None,
    max_steps: int | None = None,
    train_limit: int | None = None,
    test_limit: int | None = None,
) -> dict[str, Any]:
    """The key fields of one run (``rho`` and ``epochs`` override the protocol's)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"`protocol` must be one of {sorted(PROTOCOLS)}, found {protocol!r}.")
    settings = PROTOCOLS[protocol]
    rho_shared = settings["rho_shared"] if rho is None else float(rho)
    rho_task = settings["rho_task"] if rho is None else float(rho)
    return {
        "variant": variant,
        "aggregator": aggregator,
        "flat": flat,
        "seed": seed,
        # A plain run has no radius; recording 0 keeps plain keys independent of the rho choice.
        "rho_shared": rho_shared if flat else 0.0,
        "rho_task": rho_task if flat else 0.0,
        "adaptive": settings["adaptive"] if flat else False,
        "epochs": settings["epochs"] if epochs is None else epochs,
        "protocol": protocol,
        "max_steps": max_steps,
        "train_limit": train_limit,
        "test_limit": test_limit,
    }


def run_key(record: dict[str, Any]) -> tuple:
    return tuple(record.get(name) for name in KEY_FIELDS)


def example_argv(spec: dict[str, Any], source: str, mnist_dir: str, fashion_dir: str) -> list[str]:
    """Every flag of the example for one run, protocol settings included."""
    settings = PROTOCOLS[spec["protocol"]]
    kwargs = settings["aggregator_kwargs"].get(spec["aggregator"], {})
    argv = COMMON + [
        "--variant", spec["variant"],
        "--source", source,
        "--mnist_dir", mnist_dir,
        "--fashion_dir", fashion_dir,
        "--backbone", settings["backbone"],
        "--aggregator", spec["aggregator"],
        "--aggregator_kwargs", json.dumps(kwargs),
        "--flat", str(spec["flat"]).lower(),
        "--rho_shared", str(spec["rho_shared"]),
        "--rho_task", str(spec["rho_task"]),
        "--adaptive", str(spec["adaptive"]).lower(),
        "--joint_norm", str(settings["joint_norm"]).lower(),
        "--learning_rate", str(settings["learning_rate"]),
        "--lr_scheduler_type", settings["lr_scheduler_type"],
        "--warmup_steps", str(settings["warmup_steps"]),
        "--num_train_epochs", str(spec["epochs"]),
        "--seed", str(spec["seed"]),
        "--data_seed", str(spec["seed"]),
    ]  # fmt: skip
    if spec["max_steps"] is not None:
        argv += ["--max_steps", str(spec["max_steps"])]
    if spec["train_limit"] is not None:
        argv += ["--train_limit", str(spec["train_limit"])]
    if spec["test_limit"] is not None:
        argv += ["--test_limit", str(spec["test_limit"])]
    return argv


def package_fingerprint() -> str:
    """Hash of the package sources, so records from different code can be told apart."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "src" / "flatmtl").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def train_one(spec: dict[str, Any], source: str, mnist_dir: str, fashion_dir: str) -> dict:
    """Train and evaluate one run; returns its record."""
    fingerprint = package_fingerprint()  # the code as imported, before any later edit
    with tempfile.TemporaryDirectory(prefix="flatmtl-quality-") as output_dir:
        argv = example_argv(spec, source, mnist_dir, fashion_dir)
        start = time.perf_counter()
        results = load_example().main(argv + ["--output_dir", output_dir])
        seconds = time.perf_counter() - start
    settings = PROTOCOLS[spec["protocol"]]
    return {
        **spec,
        "accuracies": {task: results[f"accuracy_{task}"] for task in TASKS},
        "accuracy_mean": results["accuracy_mean"],
        "seconds": round(seconds, 1),
        "backbone": settings["backbone"],
        "joint_norm": settings["joint_norm"],
        "source": source,
        "threads": torch.get_num_threads(),
        "package_sha256": fingerprint,
        "argv": argv,
    }


def _read_json(path: Path, expected: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{path} is not readable as {expected}: {error}. Restore it, or delete it to start "
            "afresh."
        ) from None


def read_runs(path: Path) -> list[dict[str, Any]]:
    """The records in a results file (none when it does not exist yet)."""
    if not path.exists():
        return []
    payload = _read_json(path, 'a results file ({"runs": [...]})')
    runs = payload.get("runs") if isinstance(payload, dict) else None
    if not isinstance(runs, list):
        raise ValueError(
            f'{path} is not a results file: expected a JSON object {{"runs": [...]}}, found '
            f"{type(payload).__name__}{' without `runs`' if isinstance(payload, dict) else ''}."
            " Pass a file written by `run`."
        )
    for index, record in enumerate(runs):
        missing = [f for f in (*KEY_FIELDS, "accuracies") if not isinstance(record, dict)
                   or f not in record]  # fmt: skip
        if not missing and set(record["accuracies"]) != set(TASKS):
            missing = [f"accuracies for {list(TASKS)}"]
        if missing:
            raise ValueError(
                f"{path}: record {index} lacks {', '.join(missing)}; every record needs "
                f"{', '.join(KEY_FIELDS)} and accuracies. Remove or complete it."
            )
    return runs


def write_json(path: Path, payload: Any) -> None:
    """Replace ``path`` in one step, so an interrupted write never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(handle, "w") as stream:
        json.dump(payload, stream, indent=1)
        stream.write("\n")
    os.chmod(temporary, 0o644)  # mkstemp creates 0600; results are meant to be shared
    os.replace(temporary, path)


def write_runs(path: Path, runs: list[dict[str, Any]]) -> None:
    write_json(path, {"runs": runs})


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (through ``<path>.lock``) across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def claims_path(path: Path) -> Path:
    return path.with_name(path.name + ".claims")


def _claim_holder() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _holder_alive(holder: dict[str, Any]) -> bool:
    """A claim from this host whose process is gone is stale; one from another host counts."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def read_claims(path: Path) -> dict[str, dict[str, Any]]:
    """The runs being trained now by live processes, keyed by ``json.dumps(run_key)``."""
    claims_file = claims_path(path)
    if not claims_file.exists():
        return {}
    claims = _read_json(claims_file, "the claims of running processes")
    return {key: holder for key, holder in claims.items() if _holder_alive(holder)}


def _claim_key(spec: dict[str, Any]) -> str:
    return json.dumps(list(run_key(spec)))


def claim_next(specs: list[dict[str, Any]], path: Path) -> dict[str, Any] | None:
    """The first spec neither recorded nor claimed, now claimed by this process; or None."""
    with locked(path):
        finished = {run_key(record) for record in read_runs(path)}
        claims = read_claims(path)
        for spec in specs:
            if run_key(spec) in finished or _claim_key(spec) in claims:
                continue
            claims[_claim_key(spec)] = _claim_holder()
            write_json(claims_path(path), claims)
            return spec
    return None


def release(spec: dict[str, Any], path: Path, record: dict[str, Any] | None) -> None:
    """Drop this process's claim on ``spec`` and, when given, store its ``record``."""
    with locked(path):
        if record is not None:
            runs = [r for r in read_runs(path) if run_key(r) != run_key(spec)] + [record]
            write_runs(path, runs)
        claims = read_claims(path)
        claims.pop(_claim_key(spec), None)
        write_json(claims_path(path), claims)


def run_grid(specs: list[dict[str, Any]], path: Path, options: argparse.Namespace) -> int:
    """Run every spec not yet in ``path`` nor claimed by another process; returns how many."""
    order = {run_key(spec): index for index, spec in enumerate(specs, 1)}
    done = 0
    while (spec := claim_next(specs, path)) is not None:
        label = " ".join(f"{name}={spec[name]}" for name in KEY_FIELDS[:5])
        logger.info("[%d/%d] run: %s", order[run_key(spec)], len(specs), label)
        record = None
        try:
            record = train_one(spec, options.source, options.mnist_dir, options.fashion_dir)
        finally:  # a failed run is released, not recorded: the next `run` retries it
            release(spec, path, record)
        logger.info("  -> %s in %.0f s", record["accuracies"], record["seconds"])
        done += 1
    with locked(path):
        busy = read_claims(path)
    if busy:
        holders = sorted({f"{h['host']}:{h['pid']}" for h in busy.values()})
        logger.warning(
            "%d run(s) are still claimed by other processes (%s); they are not finished. If "
            "those processes are gone for good (another host's are never checked), delete %s "
            "and run again.",
            len(busy),
            ", ".join(holders),
            claims_path(path),
        )
    else:
        logger.info("nothing left to run in %s", path)
    return done


def merge(sources: list[Path], path: Path) -> int:
    """Add the records of ``sources`` to ``path``; returns how many were new.

    The same run recorded with different accuracies in two files is an error: which one is
    right cannot be decided here.
    """
    with locked(path):
        runs = read_runs(path)
        by_key = {run_key(record): record for record in runs}
        added = 0
        for source in sources:
            for record in read_runs(source):
                known = by_key.get(run_key(record))
                if known is None:
                    by_key[run_key(record)] = record
                    runs.append(record)
                    added += 1
                elif known["accuracies"] != record["accuracies"]:
                    key = ", ".join(f"{n}={v}" for n, v in zip(KEY_FIELDS, run_key(record)))
                    raise ValueError(
                        f"`sources`: {source} records the run ({key}) with accuracies "
                        f"{record['accuracies']}, but it is already recorded with "
                        f"{known['accuracies']}. Remove one of the two records and merge again."
                    )
        write_runs(path, runs)
    return added


def grid_specs(options: argparse.Namespace) -> list[dict[str, Any]]:
    """Seeds outermost, then variants, aggregators and flat modes (the order of the grid)."""
    return [
        make_spec(
            options.protocol,
            variant,
            aggregator,
            mode == "flat",
            seed,
            rho=options.rho,
            epochs=options.epochs,
            max_steps=options.max_steps,
            train_limit=options.train_limit,
            test_limit=options.test_limit,
        )  # fmt: skip
        for seed in options.seeds
        for variant in options.variants
        for aggregator in options.aggregators
        for mode in options.flat_modes
    ]


def _cell(values: list[float]) -> str:
    mean = 100 * statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {100 * statistics.stdev(values):.2f}"


def _paired_difference(plain: dict[str, list], flat: dict[str, list]) -> str:
    """Flat minus plain of the mean average accuracy; with the same seeds on both sides, also
    the sample std of the per-seed differences (the pairing removes the seed's own effect)."""
    delta = 100 * (statistics.fmean(flat["average"]) - statistics.fmean(plain["average"]))
    plain_by_seed = dict(zip(plain["seed"], plain["average"]))
    flat_by_seed = dict(zip(flat["seed"], flat["average"]))
    if len(flat_by_seed) < 2 or set(flat_by_seed) != set(plain_by_seed):
        return f"{delta:+.2f}"
    differences = [100 * (flat_by_seed[seed] - plain_by_seed[seed]) for seed in flat_by_seed]
    return f"{delta:+.2f} ± {statistics.stdev(differences):.2f}"


def summarize(runs: list[dict[str, Any]], protocol: str) -> dict[tuple, dict[str, list[float]]]:
    """(variant, aggregator, flat) -> {task, "average", "seed" or "seconds": one value per seed}.

    Only runs under the protocol's current settings count: a sweep's other radii, other epoch
    counts and smoke-test runs (step or data limits) stay out, and how many did is logged.
    """
    cells: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    left_out = 0
    for record in runs:
        if record["protocol"] != protocol:
            continue
        current = make_spec(
            protocol, record["variant"], record["aggregator"], record["flat"], record["seed"]
        )
        if run_key(record) != run_key(current):
            left_out += 1
            continue
        cell = cells[(record["variant"], record["aggregator"], record["flat"])]
        accuracies = [record["accuracies"][task] for task in TASKS]
        for task, value in zip(TASKS, accuracies):
            cell[task].append(value)
        cell["average"].append(statistics.fmean(accuracies))
        cell["seed"].append(record["seed"])
        cell["seconds"].append(record["seconds"])
    if left_out:
        logger.warning(
            "%d %r record(s) left out: not under the protocol's current settings (another "
            "radius or epoch count, or a smoke test with step or data limits).",
            left_out,
            protocol,
        )
    return cells


def markdown_table(runs: list[dict[str, Any]], protocol: str) -> str:
    """Test accuracy (%), mean ± sample std over seeds, and flat minus plain of the means."""
    cells = summarize(runs, protocol)
    header = (
        "| variant | aggregator | seeds (plain/flat) | plain top-left | plain bottom-right | "
        "plain avg | flat top-left | flat bottom-right | flat avg | flat − plain (avg, paired) | "
        "time plain / flat (s) |"
    )
    lines = [header, "|" + "---|" * 11]
    pairs = sorted(
        {(v, a) for v, a, _ in cells},
        key=lambda p: (_order(p[0], VARIANTS), _order(p[1], AGGREGATORS)),
    )
    for variant, aggregator in pairs:
        plain = cells.get((variant, aggregator, False))
        flat = cells.get((variant, aggregator, True))
        row = [
            variant,
            aggregator,
            f"{len(plain['average']) if plain else 0}/{len(flat['average']) if flat else 0}",
        ]
        for cell in (plain, flat):
            row += [_cell(cell[k]) if cell else "–" for k in (*TASKS, "average")]
        row.append(_paired_difference(plain, flat) if plain and flat else "–")
        row.append(
            " / ".join(f"{statistics.fmean(c['seconds']):.0f}" if c else "–" for c in (plain, flat))
        )
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _order(name: str, known: tuple[str, ...]) -> tuple[int, str]:
    return (known.index(name) if name in known else len(known), name)


def plot(runs: list[dict[str, Any]], protocol: str, path: Path) -> None:
    """Average accuracy per aggregator, plain and flat side by side, one panel per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = summarize(runs, protocol)
    variants = sorted({v for v, _, _ in cells}, key=lambda v: _order(v, VARIANTS))
    figure, axes = plt.subplots(1, max(len(variants), 1), figsize=(5 * max(len(variants), 1), 4))
    axes = [axes] if not hasattr(axes, "__len__") else list(axes)
    for axis, variant in zip(axes, variants):
        names = sorted(
            {a for v, a, _ in cells if v == variant}, key=lambda a: _order(a, AGGREGATORS)
        )
        lows = []
        for offset, flat, colour in ((-0.2, False, "tab:gray"), (0.2, True, "tab:blue")):
            means, errors = [], []
            for name in names:
                values = cells.get((variant, name, flat), {}).get("average", [])
                means.append(100 * statistics.fmean(values) if values else float("nan"))
                errors.append(100 * statistics.stdev(values) if len(values) > 1 else 0.0)
                lows += [100 * min(values)] if values else []
            positions = [k + offset for k in range(len(names))]
            axis.bar(
                positions,
                means,
                0.4,
                yerr=errors,
                color=colour,
                capsize=2,
                label="flat" if flat else "plain",
            )
        axis.set_xticks(range(len(names)), names, rotation=45, ha="right")
        axis.set_title(variant)
        axis.set_ylabel("average test accuracy (%)")
        if lows:
            axis.set_ylim(max(0.0, min(lows) - 2.0), 100.0)
        axis.legend(loc="upper right", ncol=2)
    figure.suptitle(f"Multi-MNIST family, protocol {protocol} (mean ± std over seeds)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def sweep(options: argparse.Namespace) -> None:
    """SAM radius sweep: one variant, aggregator and seed; rho = 0 is the plain run."""
    specs = [
        make_spec(
            options.protocol,
            options.variant,
            options.aggregator,
            False,
            options.seed,
            epochs=options.epochs,
        )
    ]
    specs += [
        make_spec(
            options.protocol,
            options.variant,
            options.aggregator,
            True,
            options.seed,
            rho=rho,
            epochs=options.epochs,
        )
        for rho in options.rhos
    ]
    run_grid(specs, options.sweep_results, options)

    # The sweep's runs are runs of the grid too: copy the ones the grid would make.
    grid_keys = {
        run_key(
            make_spec(
                options.protocol,
                options.variant,
                options.aggregator,
                flat,
                options.seed,
                epochs=options.epochs,
            )
        )
        for flat in (True, False)
    }
    shared = [r for r in read_runs(options.sweep_results) if run_key(r) in grid_keys]
    with locked(options.results):
        recorded = {run_key(r) for r in read_runs(options.results)}
        missing = [r for r in shared if run_key(r) not in recorded]
        if missing:
            write_runs(options.results, read_runs(options.results) + missing)
    for record in read_runs(options.sweep_results):
        print(
            f"rho={record['rho_shared']:<6} flat={record['flat']!s:<5} "
            f"avg={100 * statistics.fmean(record['accuracies'].values()):.2f} "
            f"{record['accuracies']} {record['seconds']} s"
        )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, found {value}")
    return value


def _radius(text: str) -> float:
    value = float(text)
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, found {text}")
    return value


def _aggregator(text: str) -> str:
    name = text.lower()
    if name not in REGISTERED_AGGREGATORS:
        raise argparse.ArgumentTypeError(
            f"unknown aggregator {text!r}; expected one of {', '.join(REGISTERED_AGGREGATORS)}"
        )
    return name


class _HelpWithDefaults(argparse.HelpFormatter):
    """Every option's help ends with its default, so the paths written to are visible."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
            text += " (default: %(default)s)"
        return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def results(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--results", type=Path, default=RESULTS, help="The grid's records.")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--protocol", choices=sorted(PROTOCOLS), default="cpu", help="Named settings."
        )
        results(sub)

    def training(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--source", choices=["idx", "sample", "hub"], default="idx", help="Image source."
        )
        sub.add_argument("--mnist_dir", default=DEFAULT_MNIST_DIR, help="MNIST IDX folder.")
        sub.add_argument(
            "--fashion_dir", default=DEFAULT_FASHION_DIR, help="Fashion-MNIST IDX folder."
        )
        sub.add_argument(
            "--epochs", type=_positive_int, default=None, help="Override the protocol's."
        )
        sub.add_argument("--threads", type=_positive_int, default=1, help="Torch CPU threads.")

    run = commands.add_parser(
        "run", formatter_class=_HelpWithDefaults, help="Run (the missing part of) a grid."
    )
    common(run)
    training(run)
    run.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    run.add_argument("--aggregators", nargs="+", type=_aggregator, default=list(AGGREGATORS))
    run.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    run.add_argument("--flat_modes", nargs="+", choices=FLAT_MODES, default=list(FLAT_MODES))
    run.add_argument("--rho", type=_radius, default=None, help="Override the protocol's radius.")
    for limit in ("--max_steps", "--train_limit", "--test_limit"):
        run.add_argument(limit, type=_positive_int, default=None, help="Smoke tests only.")

    rho_sweep = commands.add_parser(
        "sweep", formatter_class=_HelpWithDefaults, help="SAM radius sweep for one aggregator."
    )
    common(rho_sweep)
    training(rho_sweep)
    rho_sweep.add_argument(
        "--sweep_results",
        type=Path,
        default=SWEEP,
        help="All radii; the grid's own go to --results too.",
    )
    rho_sweep.add_argument("--variant", choices=VARIANTS, default="multi_mnist")
    rho_sweep.add_argument("--aggregator", type=_aggregator, default="mgda")
    rho_sweep.add_argument("--seed", type=int, default=0)
    rho_sweep.add_argument("--rhos", nargs="+", type=_radius, default=[0.01, 0.05, 0.2])

    combine = commands.add_parser(
        "merge", formatter_class=_HelpWithDefaults, help="Add the records of other results files."
    )
    results(combine)
    combine.add_argument("sources", nargs="+", type=Path, help="Results files to add.")

    table = commands.add_parser(
        "table", formatter_class=_HelpWithDefaults, help="Print (and write) the Markdown table."
    )
    common(table)
    table.add_argument("--output", type=Path, default=RESULTS.with_suffix(".md"), help="Markdown.")

    figure = commands.add_parser(
        "plot", formatter_class=_HelpWithDefaults, help="Draw the bar plot."
    )
    common(figure)
    figure.add_argument("--output", type=Path, default=RESULTS.with_suffix(".png"), help="PNG.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if options.command in ("run", "sweep"):
        torch.set_num_threads(options.threads)
        if options.command == "run":
            count = run_grid(grid_specs(options), options.results, options)
            logger.info("%d run(s) made; results in %s", count, options.results)
        else:
            sweep(options)
        return
    try:  # a bad file is a one-line message here: no training state to debug
        report(options)
    except ValueError as error:
        raise SystemExit(f"{options.command}: {error}") from None


def report(options: argparse.Namespace) -> None:
    """The `merge`, `table` and `plot` subcommands."""
    if options.command == "merge":
        missing = [str(source) for source in options.sources if not source.exists()]
        if missing:
            raise ValueError(
                f"`sources` not found: {', '.join(missing)}. Pass results files written by `run`."
            )
        count = merge(options.sources, options.results)
        logger.info("%d new run(s) merged into %s", count, options.results)
    elif not options.results.exists():
        raise ValueError(
            f"`--results` {options.results} does not exist; pass the file `run` wrote."
        )
    elif options.command == "table":
        text = markdown_table(read_runs(options.results), options.protocol)
        options.output.parent.mkdir(parents=True, exist_ok=True)
        options.output.write_text(text)
        print(text)
    else:
        plot(read_runs(options.results), options.protocol, options.output)
        print(f"wrote {options.output}")


if __name__ == "__main__":
    main()
