"""Plain-text rendering of :func:`brain2music.data.inspect_dataset` summaries."""

from __future__ import annotations


def _runs(runs: list[dict]) -> str:
    vols = sorted({r["n_volumes"] for r in runs})
    vol_text = f"{vols[0]} volumes" if len(vols) == 1 else f"{vols[0]}-{vols[-1]} volumes"
    return f"{len(runs)} runs × {vol_text}"


def format_summary(summary: dict) -> str:
    """A readable table of a dataset summary."""
    lines = [
        f"dataset   {summary['root']}",
        f"subjects  {len(summary['subjects'])}: {', '.join(summary['subjects'])}",
        f"TR        {summary['tr']} s",
        f"clips     {summary['n_train_clips']} training, {summary['n_test_clips']} test "
        f"× {summary['n_test_repeats']} repeats",
        "",
        f"{'subject':<10} {'training runs':<24} {'test runs':<24} {'train':>6} {'test':>5} {'repeats':>8}",
    ]
    for sub, d in summary["per_subject"].items():
        lines.append(
            f"{sub:<10} {_runs(d['training_runs']):<24} {_runs(d['test_runs']):<24} "
            f"{d['n_train_clips']:>6} {d['n_test_clips']:>5} {d['n_test_repeats']:>8}"
        )
    lines += ["", f"{'genre':<10} {'train':>6} {'test':>5}"]
    for genre, counts in summary["genres"].items():
        lines.append(f"{genre:<10} {counts['train']:>6} {counts['test']:>5}")
    if not summary.get("design_identical_across_subjects", True):
        lines += ["", "note: the clip design differs between subjects (see --json for each subject)"]
    return "\n".join(lines)
