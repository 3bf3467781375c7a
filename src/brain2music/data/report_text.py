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


def _groups(cols: dict) -> str:
    keep = [
        f"{k} {v}"
        for k, v in cols.items()
        if v and k not in ("framewise_displacement", "dvars", "std_dvars", "rmsd")
    ]
    flags = [k for k in ("framewise_displacement", "std_dvars") if cols.get(k)]
    return ", ".join(keep + flags)


def format_fmriprep_summary(summary: dict) -> str:
    """A readable table of :func:`brain2music.data.inspect_fmriprep`'s summary."""
    lines = [f"fMRIPrep  {summary['fmriprep']}", f"events    {summary['bids_root']}", ""]
    for sub, d in summary["per_subject"].items():
        spaces = ", ".join(f"{k} ({v} runs)" for k, v in d["spaces"].items()) or "none"
        lines.append(f"{sub}: {d['n_event_runs']} runs with events; spaces: {spaces}")
        lines.append(f"  {'run':<34} {'space':<30} {'vols':>5} {'FD mean':>8} {'FD max':>7} {'>0.5mm':>6}")
        for r in d["runs"]:
            fd_mean = f"{r['fd_mean']:.3f}" if r.get("fd_mean") is not None else "n/a"
            fd_max = f"{r['fd_max']:.2f}" if r.get("fd_max") is not None else "n/a"
            lines.append(
                f"  {r['run']:<34} {r['space']:<30} {r.get('n_volumes') or '?':>5} {fd_mean:>8} {fd_max:>7} "
                f"{r.get('n_fd_over_0.5', 'n/a'):>6}"
            )
        first = next((r for r in d["runs"] if r.get("confound_columns")), None)
        if first:
            lines.append(f"  confound columns ({first['run']}): {_groups(first['confound_columns'])}")
        lines.append("")
    if summary["problems"]:
        lines.append(f"{len(summary['problems'])} problem(s):")
        lines += [f"  {p}" for p in summary["problems"]]
    else:
        lines.append("no problems: every run with events has its fMRIPrep files in every space")
    return "\n".join(lines)
