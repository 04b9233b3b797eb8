"""The throughput chart: ratio to bare per server and variant, grouped bars (PNG, matplotlib)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .results import LoadSummary
from .variants import BASELINE, VARIANTS, unlabel

# Colours per variant, stable across charts: hooktel in blues, peers in warm colours,
# references (`Variant.reference`) in grey and hatched.
COLOURS = {
    "hooktel-idle": "#c6dbef",
    "hooktel-noop": "#9ecae1",
    "hooktel-otel": "#2171b5",
    "hooktel-otlp": "#08306b",
    "hooktel-otlp-native": "#6baed6",
    "hooktel-otel-metrics": "#4292c6",
    "otel-contrib-metrics": "#fdae6b",
    "ddtrace": "#31a354",
    "otel-contrib": "#e6550d",
    "starlette-otel": "#756bb1",
    "sdk-floor": "#bdbdbd",
    "sdk-floor-otlp": "#737373",
}
REFERENCE_HATCH = "///"


def draw(
    summaries: Sequence[LoadSummary],
    path: Path,
    title: str,
    targets: Mapping[tuple[str, str], float] | None = None,
    base: str = BASELINE,
) -> Path:
    """Bars of each variant's median ratio, grouped by server; target marks where given.

    Runs on another hooktel snapshot than `base`'s (`variant@source`) are drawn paler
    beside the first snapshot's, in the same colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    servers = list(dict.fromkeys(s.server for s in summaries))
    order = list(VARIANTS)
    variants = sorted(
        dict.fromkeys(s.variant for s in summaries if s.variant != base),
        key=lambda name: order.index(unlabel(name)[0]),
    )
    ratio = {(s.server, s.variant): s.ratio for s in summaries if s.ratio is not None}
    per_server = {srv: [v for v in variants if (srv, v) in ratio] for srv in servers}
    width = 0.84 / max((len(names) for names in per_server.values()), default=1)
    figure, axes = plt.subplots(figsize=(max(9.0, 2.2 * len(servers) + 2), 6.0), dpi=110)
    legend: dict[str, Any] = {}
    for x, server in enumerate(servers):
        names = per_server[server]
        for i, variant in enumerate(names):
            left = x + (i - (len(names) - 1) / 2) * width
            y = ratio[(server, variant)]
            kind, source = unlabel(variant)
            reference = VARIANTS[kind].reference
            (bar,) = axes.bar(
                left,
                y,
                width * 0.92,
                color=COLOURS.get(kind, "#999999"),
                alpha=1.0 if source == unlabel(base)[1] else 0.5,
                hatch=REFERENCE_HATCH if reference else None,
                edgecolor="#636363" if reference else None,
            )
            legend.setdefault(variant, bar)
            axes.text(left, y + 0.01, f"{y:.2f}", ha="center", va="bottom", fontsize=6, rotation=90)
            wanted = (targets or {}).get((server, variant))
            if wanted is not None:
                axes.plot(
                    [left - width / 2, left + width / 2], [wanted, wanted], color="black", lw=1.6
                )
    axes.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    axes.set_xticks(range(len(servers)), servers, fontsize=8)
    axes.set_ylabel("throughput / bare throughput (median over rounds)")
    axes.set_ylim(0, max(1.2, max(ratio.values(), default=1.0) + 0.12))
    axes.set_title(title, fontsize=8)
    ordered = [name for name in variants if name in legend]
    axes.legend(
        [legend[n] for n in ordered],
        [f"{n} (reference)" if VARIANTS[unlabel(n)[0]].reference else n for n in ordered],
        fontsize=7,
        ncol=4,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.07),
        frameon=False,
    )
    axes.text(
        0.995,
        0.99,
        "black tick: target; hatched: reference, not an instrumentation",
        transform=axes.transAxes,
        fontsize=7,
        ha="right",
        va="top",
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
