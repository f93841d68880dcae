"""Draw the flat step's training diagnostics of a run to one PNG.

    python scripts/plot_diagnostics.py OUTPUT_DIR_OR_TRAINER_STATE_JSON --out diagnostics.png

Reads ``log_history`` from ``trainer_state.json`` (an output or checkpoint folder, or the file
itself; the newest ``checkpoint-*`` is used when the folder has none) and plots, against the
step: per-task losses, per-task gradient norms (the paper's gradient-norm figure), the share
of steps whose task gradients conflict, the aggregator weights and the perturbation norms.
Panels without logged values are left out. Needs matplotlib (``pip install flatmtl[plot]``).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
from collections import defaultdict

PANELS = [
    ("loss/", "task loss", True),
    ("grad_norm/", "gradient norm (shared part)", True),
    ("conflict_share", "share of conflicting steps", False),
    ("weight/", "aggregator weight", False),
    ("perturbation_norm/", "perturbation norm", False),
]


def find_state(path: str) -> str:
    """The ``trainer_state.json`` of ``path`` (a file, a run folder or a checkpoint)."""
    if os.path.isfile(path):
        return path
    direct = os.path.join(path, "trainer_state.json")
    if os.path.isfile(direct):
        return direct
    checkpoints = sorted(
        glob.glob(os.path.join(path, "checkpoint-*", "trainer_state.json")),
        key=lambda p: int(p.split("checkpoint-")[-1].split(os.sep)[0]),
    )
    if not checkpoints:
        raise FileNotFoundError(
            f"`path` {path!r} holds no trainer_state.json (nor a checkpoint-* folder with one); "
            "pass a run's output folder saved with a save strategy, or the file itself."
        )
    return checkpoints[-1]


def read_series(state_file: str) -> dict[str, tuple[list[int], list[float]]]:
    """Key -> (steps, values) of every numeric training log entry."""
    with open(state_file) as handle:
        history = json.load(handle).get("log_history", [])
    series: dict[str, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
    for entry in history:
        if "loss" not in entry or "step" not in entry:
            continue  # evaluation and end-of-training summaries
        for key, value in entry.items():
            if isinstance(value, (int, float)) and key != "step":
                steps, values = series[key]
                steps.append(int(entry["step"]))
                values.append(float(value))
    return dict(series)


def plot(series: dict[str, tuple[list[int], list[float]]], out: str, title: str = "") -> str:
    """Write the panels that have data to ``out`` (PNG); returns ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for prefix, label, log_scale in PANELS:
        keys = sorted(k for k in series if k == prefix or k.startswith(prefix))
        if keys:
            panels.append((prefix, label, log_scale, keys))
    if not panels:
        raise ValueError(
            "No flatmtl diagnostics in the log history (keys such as `loss/<task>`, "
            "`grad_norm/<task>`); was the run trained with FlatMTLTrainer and logging_steps set?"
        )
    columns = 2 if len(panels) > 1 else 1
    rows = (len(panels) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(6.4 * columns, 3.6 * rows), squeeze=False)
    for axis, (prefix, label, log_scale, keys) in zip(axes.flat, panels):
        for key in keys:
            steps, values = series[key]
            name = key[len(prefix) :] if key != prefix else key
            axis.plot(steps, values, marker="o", markersize=2.5, linewidth=1.2, label=name)
        axis.set_title(label)
        axis.set_xlabel("step")
        if log_scale and all(v > 0 for k in keys for v in series[k][1]):
            axis.set_yscale("log")
        values = [v for k in keys for v in series[k][1]]
        if prefix == "conflict_share":
            axis.set_ylim(-0.05, 1.05)
        elif not axis.get_yscale() == "log" and min(values) >= 0:
            # From zero: SAM's perturbation norms equal rho up to rounding, and an offset
            # axis would magnify that rounding into noise.
            axis.set_ylim(0, 1.15 * max(values) if max(values) > 0 else 1)
            axis.ticklabel_format(axis="y", useOffset=False)
        axis.grid(alpha=0.3)
        if len(keys) > 1 or key != prefix:
            axis.legend(fontsize=7, ncol=2 if len(keys) > 4 else 1)
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="run output folder, checkpoint folder or trainer_state.json")
    parser.add_argument("--out", default="diagnostics.png", help="PNG to write")
    parser.add_argument("--title", default="", help="figure title")
    args = parser.parse_args(argv)
    return plot(read_series(find_state(args.path)), args.out, args.title)


if __name__ == "__main__":
    main()
