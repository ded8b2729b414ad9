"""Presenting a bench report (measure/bench.py): a text table, a markdown table, and a PNG plot."""
from __future__ import annotations

from pathlib import Path

from mmfir.runtime.cpu import ISA_ENV as ISA_ENV_NAME
from mmfir.runtime.files import atomic_path

HEADER = ("backend", "network", "size", "batch", "p50 ms", "p95 ms", "min ms", "img/s", "x torch", "x torch (min)",
          "GFLOP/s", "% peak", "peak RSS MB")


def _fmt(value, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def row_cells(row: dict, backends: dict) -> list[str]:
    label = f"{row['backend']}/{row['precision']}"
    rss = (backends.get(label) or {}).get("peak_rss_mb")
    network = row["network"]
    if row.get("steps"):  # a diffusion sample: the steps and the time per step
        network += f" ({row['steps']} steps, {row['p50_ms'] / row['steps']:.1f} ms/step)"
    return [label, network, str(row["size"]), str(row["batch"]), _fmt(row["p50_ms"], ".1f"),
            _fmt(row["p95_ms"], ".1f"), _fmt(row.get("min_ms"), ".1f"), _fmt(row["throughput_ips"], ".2f"),
            _fmt(row.get("speedup_vs_torch"), ".2f"), _fmt(row.get("speedup_vs_torch_min"), ".2f"),
            _fmt(row.get("gflops_per_s"), ".1f"), _fmt(row["peak_fraction"] and 100 * row["peak_fraction"], ".0f"),
            _fmt(rss, ".0f")]


def sorted_rows(report: dict) -> list[dict]:
    order = {name: i for i, name in enumerate(report["settings"]["networks"])}
    return sorted(report["results"], key=lambda r: (order.get(r["network"], 99), r["batch"], r["size"]))


def format_table(report: dict) -> str:
    rows = [list(HEADER)] + [row_cells(r, report["backends"]) for r in sorted_rows(report)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    return "\n".join(header_lines(report) + lines + error_lines(report))


def header_lines(report: dict) -> list[str]:
    m, peak = report["machine"], report.get("peak") or {}
    peaks = ", ".join(f"{k.upper()} {v['gflops']:.0f} GFLOP/s ({v['how']})" for k, v in peak.items()
                      if isinstance(v, dict) and v.get("gflops"))
    load = report.get("load_average_before")
    load_text = f"; load average before: {load[0]:.1f}" if load else ""
    skipped = "".join(f"; {k.upper()} peak not measured: {v['not_measured']}" for k, v in peak.items()
                      if isinstance(v, dict) and v.get("not_measured"))
    features = ", ".join(m.get("isa") or []) or "none reported"
    cap = m.get("isa_cap")
    cap_lines = [f"ISA capped to {cap['cap'].upper()} ({ISA_ENV_NAME}): hidden {', '.join(cap['hidden']) or 'nothing'}; "
                 f"not capped: {cap['not_capped']}, so its rows are not {cap['cap'].upper()} numbers"] if cap else []
    return [f"machine: {m['cpu']}, {m['cores']} cores, CPU features: {features}", *cap_lines,
            f"matmul peak: {peaks or 'not measured'}{skipped}{load_text}",
            f"bundle: {report['bundle']['path']} ({report['bundle'].get('model')})",
            *[f"note: {n}" for n in report["notes"]]]


def error_lines(report: dict) -> list[str]:
    return [f"ERROR {label}: {info['error']}" for label, info in report["backends"].items() if info.get("error")]


def format_markdown(report: dict) -> str:
    rows = [row_cells(r, report["backends"]) for r in sorted_rows(report)]
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def write_plot(report: dict, path: str | Path, network: str = "end_to_end") -> Path:
    """Latency (p50, log scale) vs image size, one line per backend and batch, for ``network``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines: dict[str, list[tuple[int, float]]] = {}
    for r in report["results"]:
        if r["network"] == network:
            lines.setdefault(f"{r['backend']}/{r['precision']} b{r['batch']}", []).append((r["size"], r["p50_ms"]))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, points in sorted(lines.items()):
        xs, ys = zip(*sorted(points))
        ax.plot(xs, ys, marker="o", label=label)
    ax.set(xlabel="image size (pixels per side)", ylabel=f"{network} latency p50 (ms)", yscale="log",
           title=f"{report['bundle'].get('model')} on {report['machine']['cpu']} ({report['machine']['cores']} cores)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
