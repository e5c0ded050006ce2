"""PNG plots of evaluation reports: recall@k curves, score distributions of relevant and other hits,
zero-shot confusion matrices. matplotlib (the `eval` extra) is imported here only, with the Agg backend,
so nothing else pays for it or needs a screen."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mmsearch.errors import ConfigError

if TYPE_CHECKING:
    from mmsearch.evaluate.run import IndexReport


def pyplot():
    """matplotlib.pyplot on the Agg backend; ConfigError naming the extra when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ConfigError("plots need matplotlib: pip install 'mmsearch[eval]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(reports: list[IndexReport], names: list[str], folder: Path) -> list[Path]:
    """One PNG per figure into `folder`, each index drawn under its name; returns the files written."""
    plt = pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if any(r.queries for r in reports):
        written += [_recall_curve(plt, reports, names, folder), _scores(plt, reports, names, folder)]
    for n, (report, name) in enumerate(zip(reports, names, strict=True), 1):
        if report.zero_shot is not None:
            written.append(_confusion(plt, report, name, folder / f"confusion-{n}.png"))
    return written


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _recall_curve(plt, reports: list[IndexReport], names: list[str], folder: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    for report, name in zip(reports, names, strict=True):
        if report.queries:
            curve = report.recall_curve()
            ax.plot(range(1, len(curve) + 1), curve, marker="o", label=name)
    ax.set(xlabel="k", ylabel="mean recall@k", ylim=(0, 1.02), title="Recall@k over all queries")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(plt, fig, folder / "recall_at_k.png")


def _scores(plt, reports: list[IndexReport], names: list[str], folder: Path) -> Path:
    shown = [(r, n) for r, n in zip(reports, names, strict=True) if r.queries]
    fig, axes = plt.subplots(1, len(shown), figsize=(6 * len(shown), 4), squeeze=False)
    for ax, (report, name) in zip(axes[0], shown, strict=True):
        scored = [pair for q in report.queries for pair in q.scores]
        relevant = [s for s, rel in scored if rel]
        other = [s for s, rel in scored if not rel]
        ax.hist([relevant, other], bins=30, label=["relevant", "other"], color=["tab:green", "tab:gray"])
        ax.set(xlabel="score", ylabel="hits", title=f"Scores of the top {report.depth}: {name}")
        ax.legend()
    return _save(plt, fig, folder / "scores.png")


def _confusion(plt, report: IndexReport, name: str, path: Path) -> Path:
    z = report.zero_shot
    side = max(5.0, 0.3 * len(z.labels) + 2)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    image = ax.imshow(z.confusion, cmap="Blues")
    ticks = range(len(z.labels))
    ax.set_xticks(ticks, z.labels, rotation=90, fontsize=7)
    ax.set_yticks(ticks, z.labels, fontsize=7)
    ax.set(xlabel="predicted (top-1)", ylabel="true", title=f"Zero-shot: {name} (top-1 {z.top1:.3f})")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return _save(plt, fig, path)
