"""Rate–accuracy plots and the markdown report from fmap-eval output.

Reads, for each run directory given with --runs (its basename is the model key: nanodet, ssd),
the files fmap-eval writes: results.json (feature methods), anchors.json (cloud-only video
anchors), summary.json (BD-rates and the lowest rates meeting the accuracy bars), and, when
present, correlation.json (temporal SSIM/MSE) and run.json (run facts, class labels). Writes,
per model and split point, the rate–accuracy plot `<model>_<split>` and the thesis-style
rate/accuracy-against-bits plot `<model>_<split>_bits`, per model `<model>_correlation`
(each as PNG and SVG), and the markdown report.

Missing files and fields (older fmap-eval output) are tolerated: the sections that need them
are left out or show "–".

Run with the project venv: .venv/bin/python eval/plot.py --runs out/report/nanodet ...
"""

import argparse
import json
import math
import os
import re
import sys
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.hashsalt"] = "fmap"  # stable element ids in the SVGs
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import colormaps  # noqa: E402

MODEL_NAMES = {"nanodet": "NanoDet-416", "ssd": "SSD MobileNetV2 (8-bit)"}
FULL_CLIP_FRAMES = 795
ROBUST_MIN_BOXES = 100  # fallback for runs written before run.json carried robust_min_boxes


def min_boxes(run):
    return run.get("info", {}).get("robust_min_boxes", ROBUST_MIN_BOXES)
EVAL_THRESHOLD = 0.05
DPI = 110
FEATURES = "features (any method)"
UNCODED = "uncoded I420"
# The two accuracy bars: (summary.json criterion, label, key on a point, bar).
BARS = [
    ("person AP50 >= 0.98", "person AP@0.5 ≥ 0.98", lambda p: p.get("person_ap50"), 0.98),
    ("robust mAP50 >= 0.95", "robust mAP@0.5 ≥ 0.95", lambda p: acc(p, "map50_robust"), 0.95),
]
# Video anchor columns of the headline: (codec, size role).
HEADLINE_ANCHORS = [("x264", "source"), ("x264", "model"), ("x265", "source"), ("x265", "model"),
                    ("JPEG", "source")]
THESIS_CORRELATION = (
    "The thesis (sec. 4.2) reports SSIM 0.994 / MSE 1.621 between consecutive video frames and "
    "SSIM 0.995, 0.996, 0.991 and 0.985 between consecutive feature maps at its four partition "
    "points, measured on a single pair of a 30 fps 1280x960 parking-lot clip; here every pair of "
    "the {fps:g} fps {clip} is measured (lag 1 here spans the time of lag {thesis_lag:g} at 30 fps)."
)


# ---------------------------------------------------------------------------------------------
# Loading and small accessors


def read_json(run, name, default):
    path = os.path.join(run, name)
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


def load(run):
    r = {
        "dir": os.path.basename(os.path.normpath(run)),
        "results": read_json(run, "results.json", []),
        "anchors": read_json(run, "anchors.json", []),
        "summary": read_json(run, "summary.json", {}),
        "correlation": read_json(run, "correlation.json", []),
        "info": read_json(run, "run.json", {}),
    }
    r["name"] = model_key(r["dir"], r["info"])
    r["model"] = MODEL_NAMES.get(r["name"], r["name"])
    r["frames"] = r["info"].get("frames") or next(
        (p.get("frames") for p in r["results"] + r["anchors"] if p.get("frames")), 0)
    r["fps"] = derive_fps(r["results"])
    r["clip"] = os.path.basename(r["info"].get("video") or "vtest.avi")
    r["profile"] = model_profile(r["info"]) or guess_profile(r["name"])
    r["labels"], r["labels_from"] = class_labels(r["info"], r["profile"])
    r["sizes"] = anchor_sizes(r["anchors"])
    return r


def model_key(dirname, info):
    """The model key: the run directory's name, else the model file's (nanodet.onnx -> nanodet)."""
    if dirname in MODEL_NAMES:
        return dirname
    stem = os.path.splitext(os.path.basename(info.get("model") or ""))[0]
    return next((k for k in MODEL_NAMES if stem.startswith(k)), dirname)


def unique_names(runs):
    """Two runs of one model keep their directory names, so their plot files do not collide."""
    keys = [r["name"] for r in runs]
    for r in runs:
        if keys.count(r["name"]) > 1:
            r["name"] = r["dir"]
            r["model"] = f"{MODEL_NAMES.get(model_key(r['dir'], r['info']), r['dir'])} [{r['dir']}]"
    return runs


def derive_fps(results):
    """The clip's frame rate from kbit/s = bytes/frame · 8 · fps / 1000 (10 if unknown)."""
    for p in results:
        if p.get("bytes_per_frame_mean") and p.get("kbit_per_s"):
            return round(p["kbit_per_s"] * 1000 / (8 * p["bytes_per_frame_mean"]), 2)
    return 10.0


def model_profile(info):
    """The model's profile next to its ONNX file ({} if it cannot be found)."""
    model = info.get("model")
    profile = os.path.splitext(model)[0] + ".profile.json" if model else None
    if not profile or not os.path.exists(profile):
        return {}
    with open(profile) as f:
        p = json.load(f)
    p["_path"] = os.path.basename(profile)
    return p


def guess_profile(key):
    """Old runs without run.json: the profile in the models/ directory next to eval/, by model key."""
    models = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models")
    if not os.path.isdir(models):
        return {}
    found = sorted(f for f in os.listdir(models) if f.startswith(key) and f.endswith(".profile.json"))
    return model_profile({"model": os.path.join(models, found[0][: -len(".profile.json")] + ".onnx")}) if len(found) == 1 else {}


def class_labels(info, profile):
    """Class id -> name from run.json, else from the model's profile, else none (ids are shown)."""
    if info.get("class_labels"):
        return {str(k): v for k, v in info["class_labels"].items()}, "run.json"
    if profile.get("labels"):
        return {str(i): n for i, n in enumerate(profile["labels"])}, profile["_path"]
    return {}, None


def class_name(run, cid):
    return run["labels"].get(str(cid), f"class {cid}")


def acc(p, key):
    return (p.get("accuracy") or {}).get(key)


def bits_of(p):
    """Quantizer bits: the field, else bits=N in the setting, else 8 for the 8-bit tiled method."""
    if p.get("bits") is not None:
        return p["bits"]
    m = re.search(r"\bbits=(\d+)", p.get("encoder") or "")
    if m:
        return int(m.group(1))
    return 8 if p.get("method", "").startswith("tiled 8-bit") else None


def codec_of(a):
    return a.get("codec") or (UNCODED if a["method"].startswith(UNCODED) else a["method"].split()[0])


def size_of(a):
    if a.get("width") and a.get("height"):
        return f"{a['width']}x{a['height']}"
    m = re.search(r"(\d+)x(\d+)", a["method"])
    return m.group(0) if m else "?"


def area(size):
    w, _, h = size.partition("x")
    return int(w) * int(h) if w.isdigit() and h.isdigit() else 0


def anchor_sizes(anchors):
    """{"source": WxH, "model": WxH}: the largest anchor size is the source, the smallest the model's."""
    sizes = sorted({size_of(a) for a in anchors}, key=area)
    if not sizes:
        return {}
    out = {"source": sizes[-1]}
    if len(sizes) > 1:
        out["model"] = sizes[0]
    return out


def anchor_method(run, codec, role):
    size = run["sizes"].get(role)
    return f"{codec} {size}" if size else None


def is_ceiling(a):
    return codec_of(a) == UNCODED


def coded_anchors(run):
    return [a for a in run["anchors"] if not is_ceiling(a)]


def ceiling(run, size):
    return next((a for a in run["anchors"] if is_ceiling(a) and size_of(a) == size), None)


def splits_of(run):
    return list(OrderedDict.fromkeys(p["split"] for p in run["results"]))


def robust_labels(run):
    """The robust mAP's class labels, as fmap-eval defined them (run.json)."""
    return (run.get("info", {}).get("robust_labels")
            or ["person", "bicycle", "car", "motorcycle", "bus", "truck"])


def robust_classes(run):
    """The robust mAP's class ids: person and vehicle labels (robust_labels) with at least
    ROBUST_MIN_BOXES reference boxes."""
    counts = next((acc(p, "reference_counts") for p in run["results"] + run["anchors"]
                   if acc(p, "reference_counts")), {}) or {}
    labels = set(robust_labels(run))
    ids = [c for c, n in counts.items() if n >= min_boxes(run) and class_name(run, c) in labels]
    return sorted(ids, key=lambda c: int(c) if str(c).isdigit() else c), counts


def source_video_kbit(run):
    """The source file's own rate: a feature point's rate times its ratio against the source."""
    for p in run["results"]:
        if p.get("ratio_vs_source_video") and p.get("kbit_per_s"):
            return p["kbit_per_s"] * p["ratio_vs_source_video"]
    return None


def cheapest(points, key, bar):
    ok = [p for p in points if key(p) is not None and key(p) >= bar and p.get("kbit_per_s") is not None]
    return min(ok, key=lambda p: p["kbit_per_s"]) if ok else None


def nearest_rate(points, kbit):
    pts = [p for p in points if p.get("kbit_per_s")]
    if not pts or not kbit:
        return None
    return min(pts, key=lambda p: abs(math.log(p["kbit_per_s"] / kbit)))


def fmt(v, digits=1):
    return "–" if v is None else f"{v:.{digits}f}"


def fmt_rate(v):
    if v is None:
        return "–"
    return f"{v:.0f}" if v >= 1000 else f"{v:.1f}"


def short_setting(p):
    """The part of a setting its method name does not already say: bits, QP, quality, …"""
    enc = p.get("encoder")
    if not enc:
        return "float32"
    tok = dict(t.split("=", 1) for t in enc.replace(" ! ", " ").split() if "=" in t)
    implied = {"mode", "entropy", "search", "speed-preset", "key-int-max", "option-string", "pass",
               "bframes", "bits", "qp", "quantizer", "quality"}
    parts = []
    if "bits" in tok and not p.get("method", "").startswith("tiled"):
        parts.append(f"{tok['bits']} bit")
    for k, lab in (("qp", "QP"), ("quantizer", "QP"), ("quality", "quality")):
        if k in tok:
            parts.append(f"{lab} {tok[k]}")
    if "lossless=1" in enc:
        parts.append("lossless")
    if "dead-zone" in tok and "dz" in p.get("method", ""):
        implied.add("dead-zone")
    if not p.get("method", "").startswith("adaptive"):
        # The thesis modes' motion settings, fixed for the whole report.
        implied |= {"block-size", "search-range", "key-interval"}
    parts += [f"{k}={v}" for k, v in tok.items() if k not in implied and "/" not in k]
    return ", ".join(parts) or enc.split()[0]


def setting_label(p):
    return f"{p['method']} ({short_setting(p)})"


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out + [""]


# ---------------------------------------------------------------------------------------------
# Styles: one hue per method family, marker and line style by entropy coder inside a family.

FAMILIES = [  # (method prefix, colormap); first match wins
    ("adaptive", "copper"),
    ("closed-loop", "Reds"),
    ("uni TSS", "Greens"),
    ("bi TSS", "Oranges"),
    ("tiled", "Purples"),
    ("quantization", "Blues"),
]
ENTROPY_STYLE = [  # (method suffix, marker, line style); first match wins
    ("ZVC + Huffman", "D", ":"),
    ("Huffman", "^", "-."),
    ("ZVC", "s", "--"),
    ("HEVC lossless", "X", "none"),
    ("PNG", "P", "none"),
]


def family_of(method):
    return next((f for f, _ in FAMILIES if method.startswith(f)), None)


def method_styles(methods):
    """method -> plot keyword arguments, stable for a given set of method names."""
    styles = {}
    by_family = OrderedDict()
    for m in methods:
        by_family.setdefault(family_of(m), []).append(m)
    for fam, ms in by_family.items():
        cmap = colormaps[dict(FAMILIES).get(fam, "Greys")]
        shades = np.linspace(0.95, 0.55, len(ms)) if len(ms) > 1 else [0.8]
        for m, shade in zip(sorted(ms, key=len), shades):
            marker, ls = next(((mk, l) for s, mk, l in ENTROPY_STYLE if m.endswith(s)), ("o", "-"))
            if "dz" in m:
                marker = "v"
            styles[m] = dict(color=cmap(shade), marker=marker, linestyle=ls, ms=6, lw=1.4)
        if fam is None:
            for m in ms:
                styles[m] = dict(color="black", marker="*", linestyle="none", ms=11)
    return styles


def anchor_style(run, method):
    codec = method.split()[0]
    marker, ls = {"x264": ("s", "--"), "x265": ("D", "-"), "JPEG": ("^", ":")}.get(codec, ("x", "-."))
    dark = method.endswith(run["sizes"].get("model", "?"))
    return dict(color="0.15" if dark else "0.6", marker=marker, linestyle=ls, ms=5, lw=1.1,
                mfc="white" if not dark else None)


def save(fig, plots_dir, stem):
    os.makedirs(plots_dir, exist_ok=True)
    base = os.path.join(plots_dir, stem)
    fig.savefig(base + ".png", dpi=DPI)
    fig.savefig(base + ".svg", metadata={"Date": None})  # no date: unchanged plots, unchanged files
    plt.close(fig)
    return base


def run_title(run, split=None):
    where = f", split at {split}" if split else ""
    return f"{run['model']}{where} — {run['clip']}, {run['frames']} frames at {run['fps']:g} fps"


def draw_bar(ax, bar):
    ax.axhline(bar, color="red", lw=1.0, alpha=0.75, zorder=1)
    ax.annotate(f"bar {bar:g}", xy=(0.995, bar), xycoords=("axes fraction", "data"), ha="right",
                va="top", xytext=(0, -2), textcoords="offset points", color="red", fontsize=8)


# ---------------------------------------------------------------------------------------------
# Plot (a): rate against accuracy


def curves(points, key, label):
    """label(point) -> [(kbit/s, accuracy)] sorted by rate; points without accuracy left out."""
    out = OrderedDict()
    for p in points:
        if key(p) is not None and p.get("kbit_per_s"):
            out.setdefault(label(p), []).append((p["kbit_per_s"], key(p)))
    return OrderedDict((k, sorted(v)) for k, v in out.items())


def plot_rate_curves(ax, run, feats, key, styles):
    for method, pts in curves(feats, key, lambda p: p["method"]).items():
        xs, ys = zip(*pts)
        ax.plot(xs, ys, label=method, zorder=3, **styles[method])
    for method, pts in curves(coded_anchors(run), key, lambda p: p["method"]).items():
        xs, ys = zip(*pts)
        ax.plot(xs, ys, label=f"video: {method}", zorder=2, **anchor_style(run, method))
    for a in run["anchors"]:
        if is_ceiling(a) and key(a) is not None:
            dark = size_of(a) == run["sizes"].get("model")
            ax.plot([a["kbit_per_s"]], [key(a)], marker="h", ms=8, linestyle="none",
                    color="0.15" if dark else "0.6", label=f"ceiling: {a['method']}", zorder=2)


def y_floor(run, feats, key):
    vals = [key(p) for p in feats + run["anchors"] if key(p) is not None]
    return max(0.0, min(vals) - 0.03) if vals else 0.0


def plot_split(run, split, plots_dir):
    feats = [p for p in run["results"] if p["split"] == split]
    styles = method_styles(OrderedDict.fromkeys(p["method"] for p in feats))
    fig, axes = plt.subplots(2, 2, figsize=(15, 9.5), sharex=True,
                             gridspec_kw={"height_ratios": [1, 1.15]})
    for col, (_, label, key, bar) in enumerate(BARS[::-1]):
        for row in range(2):
            ax = axes[row][col]
            plot_rate_curves(ax, run, feats, key, styles)
            draw_bar(ax, bar)
            ax.set_xscale("log")
            ax.grid(True, which="major", alpha=0.45)
            ax.grid(True, which="minor", alpha=0.15)
            name = label.split(" ≥")[0]
            if row == 0:
                ax.set_ylim(y_floor(run, feats, key), 1.01)
                ax.set_title(f"{name} (full range)", fontsize=10)
            else:
                ax.set_ylim(0.88, 1.003)
                ax.set_title(f"{name}, zoom on 0.88–1 (the bars)", fontsize=10)
                ax.set_xlabel("rate (kbit/s, log scale)")
            ax.set_ylabel(f"{name} vs. unsplit model")
    legend_outside(fig, axes.flat)
    fig.suptitle(f"Rate vs. accuracy: {run_title(run, split)}", fontsize=12)
    fig.tight_layout(rect=(0, 0, 0.77, 0.97))
    return save(fig, plots_dir, f"{run['name']}_{split}")


def legend_outside(fig, axes, x=0.775):
    seen = OrderedDict()
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    fig.legend(list(seen.values()), list(seen.keys()), loc="center left", bbox_to_anchor=(x, 0.5),
               fontsize=8.5, frameon=False, title="feature methods, then video anchors (grey)",
               title_fontsize=8.5)


# ---------------------------------------------------------------------------------------------
# Plot (b): thesis-style rate and accuracy against quantizer bits (thesis Figs. 4.14–4.21)


def bits_curves(feats, key):
    """method -> [(bits, value)]: methods with a bits field, tiled and raw float left out."""
    out = OrderedDict()
    for p in feats:
        b = bits_of(p)
        if b is None or p["method"].startswith(("tiled", "raw")) or key(p) is None:
            continue
        out.setdefault(p["method"], []).append((b, key(p)))
    return OrderedDict((k, sorted(v)) for k, v in out.items())


def rate_references(run, feats):
    """Horizontal lines of the bits plot: [(kbit/s, label, style)]."""
    refs = []
    raw = next((p for p in feats if p["method"] == "raw float"), None)
    if raw:
        refs.append((raw["kbit_per_s"], "raw float (uncoded cut tensors)", dict(color="black", ls="--")))
    src = source_video_kbit(run)
    if src:
        refs.append((src, f"source video file ({run['clip']})", dict(color="0.45", ls="-.")))
    x265 = anchor_method(run, "x265", "model")
    for (_, label, key, bar), ls in zip(BARS[::-1], (":", (0, (5, 2, 1, 2, 1, 2)))):
        best = cheapest([a for a in run["anchors"] if a["method"] == x265], key, bar)
        if best:
            refs.append((best["kbit_per_s"], f"cheapest {x265} with {label}", dict(color="0.2", ls=ls)))
    return refs


def draw_rate_references(ax, refs):
    """Horizontal reference lines with their labels; a label too close to the line above goes below."""
    above = math.inf
    for kbit, label, st in sorted(refs, key=lambda r: -r[0]):
        below = above / kbit < 1.8
        ax.axhline(kbit, lw=1.1, **st)
        ax.annotate(f"{label}: {fmt_rate(kbit)} kbit/s", xy=(0.01, kbit), xycoords=("axes fraction", "data"),
                    xytext=(0, -3 if below else 3), va="top" if below else "bottom",
                    textcoords="offset points", fontsize=8, color=st["color"])
        above = kbit


def plot_bits(run, split, plots_dir):
    feats = [p for p in run["results"] if p["split"] == split]
    rate = bits_curves(feats, lambda p: p.get("kbit_per_s"))
    if not rate:
        return None
    styles = method_styles(OrderedDict.fromkeys(p["method"] for p in feats))
    fig = plt.figure(figsize=(15, 7.5))
    gs = fig.add_gridspec(2, 2, width_ratios=[1.1, 1])
    ax_rate = fig.add_subplot(gs[:, 0])
    for method, pts in rate.items():
        ax_rate.plot(*zip(*pts), label=method, **styles[method])
    draw_rate_references(ax_rate, rate_references(run, feats))
    ax_rate.set_yscale("log")
    ax_rate.set_ylabel("rate (kbit/s, log scale)")
    ax_rate.set_title("rate against quantizer bits", fontsize=10)
    axes = [ax_rate]
    for row, (_, label, key, bar) in enumerate(BARS[::-1]):
        ax = fig.add_subplot(gs[row, 1], sharex=ax_rate)
        for method, pts in bits_curves(feats, key).items():
            ax.plot(*zip(*pts), label=method, **styles[method])
        draw_bar(ax, bar)
        name = label.split(" ≥")[0]
        ax.set_ylabel(f"{name} vs. unsplit model")
        ax.set_title(f"{name} against quantizer bits", fontsize=10)
        axes.append(ax)
    bits = [b for pts in rate.values() for b, _ in pts]
    finish_bits_axes(axes, range(min(2, min(bits)), max(8, max(bits)) + 1))
    legend_outside(fig, axes, x=0.805)
    fig.legends[0].set_title("feature methods")
    fig.suptitle(f"Rate and accuracy against quantizer bits: {run_title(run, split)}", fontsize=12)
    fig.tight_layout(rect=(0, 0, 0.80, 0.96))
    return save(fig, plots_dir, f"{run['name']}_{split}_bits")


def finish_bits_axes(axes, ticks):
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.set_xticks(list(ticks))
        ax.set_xlim(ticks[0] - 0.3, ticks[-1] + 0.3)
    axes[0].set_xlabel("quantizer bits")
    axes[-1].set_xlabel("quantizer bits")


# ---------------------------------------------------------------------------------------------
# Temporal correlation (thesis sec. 4.2)


def series_key(row):
    """(tensor or 'video', shape) of a correlation row, and its split (None for the video)."""
    name = row.get("name", "?")
    if name == "video":
        return ("video", row.get("shape", "")), None
    split, _, tensor = name.partition(" ")
    return (tensor or split, row.get("shape", "")), split


def correlation_series(run):
    """One entry per distinct series: the same tensor cut at several splits is measured once."""
    series = OrderedDict()
    for row in run["correlation"]:
        key, split = series_key(row)
        s = series.setdefault(key, {"splits": [], "lags": OrderedDict()})
        if split and split not in s["splits"]:
            s["splits"].append(split)
        s["lags"].setdefault(row.get("lag"), row)
    return series


def short_tensor(name):
    last = name.split("/")[-1].replace("onnx_tf_prefix_", "")
    return last if len(name.split("/")) < 2 or last not in ("add", "output:0") else "/".join(name.split("/")[-2:])


def series_label(key, s):
    tensor, shape = key
    if tensor == "video":
        return f"video frames ({shape})"
    return f"{' & '.join(s['splits'])}: {short_tensor(tensor)} ({shape})"


def plot_correlation(run, plots_dir):
    series = correlation_series(run)
    if not series:
        return None
    fig, (ax, ax_lag) = plt.subplots(1, 2, figsize=(15, 5.5), gridspec_kw={"width_ratios": [3, 1]})
    for i, (key, s) in enumerate(series.items()):
        color = "black" if key[0] == "video" else f"C{i % 10}"
        row = s["lags"].get(1) or next(iter(s["lags"].values()))
        ys = row.get("per_pair_ssim") or []
        ax.plot(range(len(ys)), ys, color=color, lw=1.2 if len(ys) < 200 else 0.6,
                label=series_label(key, s))
        lags = sorted(l for l in s["lags"] if l is not None)
        ax_lag.plot(lags, [s["lags"][l].get("ssim_mean") for l in lags], marker="o", color=color)
    ax.set_xlabel("frame index t (pair t, t+1)")
    ax.set_ylabel("SSIM between frame t and t+1")
    ax.set_title("per-pair SSIM, lag 1", fontsize=10)
    ax_lag.set_xlabel("lag (frames)")
    ax_lag.set_ylabel("mean SSIM")
    ax_lag.set_title("mean SSIM against lag", fontsize=10)
    ax_lag.set_xticks(sorted({l for s in series.values() for l in s["lags"] if l is not None}))
    for a in (ax, ax_lag):
        a.grid(True, alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=8.5,
               frameon=False)
    fig.suptitle(f"Temporal correlation: {run_title(run)}", fontsize=12)
    fig.tight_layout(rect=(0, 0.02 + 0.035 * math.ceil(len(series) / 2), 1, 0.95))
    return save(fig, plots_dir, f"{run['name']}_correlation")


def correlation_rows(run):
    rows = []
    for key, s in correlation_series(run).items():
        tensor, shape = key
        for lag, r in s["lags"].items():
            rows.append([
                "video (grey)" if tensor == "video" else f"`{tensor}`",
                ", ".join(s["splits"]) or "–", shape, lag, r.get("pairs", "–"),
                fmt(r.get("ssim_mean"), 4), fmt(r.get("ssim_p05"), 4), fmt(r.get("ssim_min"), 4),
                fmt_sig(r.get("mse_mean")), fmt(r.get("nmse_mean"), 4),
            ])
    return rows


def fmt_sig(v):
    return "–" if v is None else f"{v:.4g}"


def correlation_sentence(run):
    series = correlation_series(run)
    video = next((s["lags"].get(1) for k, s in series.items() if k[0] == "video"), None)
    tensors = [s["lags"].get(1) for k, s in series.items() if k[0] != "video" and s["lags"].get(1)]
    text = THESIS_CORRELATION.format(fps=run["fps"], clip=run["clip"], thesis_lag=30 / run["fps"])
    if video:
        text += (f" Consecutive frames here: mean SSIM {video['ssim_mean']:.3f}, mean MSE "
                 f"{video['mse_mean']:.1f} (grey levels²)")
    if tensors:
        lo = min(t["ssim_mean"] for t in tensors)
        hi = max(t["ssim_mean"] for t in tensors)
        text += f"; consecutive feature maps: mean SSIM {lo:.3f}–{hi:.3f}"
    if video or tensors:
        all_ = [v["ssim_mean"] for v in tensors + ([video] if video else [])]
        rel = "below" if max(all_) < 0.985 else "close to"
        text += f", {rel} the thesis's 0.985–0.996."
    return text


# ---------------------------------------------------------------------------------------------
# Report sections


def scope_section(runs):
    L = ["# fmap rate–accuracy results\n", "Generated by `scripts/eval-report.sh` (do not edit by hand).\n"]
    parts = [f"{r['model']} ({', '.join(splits_of(r)) or 'no splits'}: {r['frames']} frames)" for r in runs]
    clip = runs[0]["clip"] if runs else "vtest.avi"
    size = next((r["sizes"]["source"] for r in runs if r["sizes"].get("source")), None)
    L.append(
        f"Scope: {'; '.join(parts)} of {clip} (a {FULL_CLIP_FRAMES}-frame, {runs[0]['fps'] if runs else 10:g} fps"
        f"{', ' + size if size else ''} street scene with pedestrians). For each split point the cut "
        f"tensors are coded by every feature method, and the cloud-only alternative (the input video "
        f"coded by x264, x265 or JPEG, decoded and run through the whole model) is measured on the same "
        f"frames. The feature methods are the thesis's (quantization with ZVC/Huffman, uni/bi "
        f"prediction), closed loop, the tiled mosaic through `fmaptile` and a video encoder, and "
        f"**adaptive**, fmap's own mode (`fmapenc`'s default: closed loop with a uniform step, "
        f"rate–distortion block decisions and context-adaptive range coding), on a quality ladder "
        f"and under rate control.\n")
    short = [r for r in runs if r["frames"] and r["frames"] < FULL_CLIP_FRAMES]
    if short:
        L.append(
            "**Not the whole clip: " + ", ".join(f"{r['model']} used the first {r['frames']}" for r in short)
            + f" of the {FULL_CLIP_FRAMES} frames.** Run `FRAMES=0 scripts/eval-report.sh` for the whole clip.\n")
    L.append(accuracy_paragraph(runs))
    L.append(
        f"Rates are kbit/s at the clip's frame rate. Feature rates count every coded byte of the cut "
        f"tensors (the tiled method's side information travels inside its pictures); video "
        f"rates count the coded elementary stream. "
        + source_rate_sentence(runs) + "\n")
    return L


def accuracy_paragraph(runs):
    robust = []
    for r in runs:
        ids, counts = robust_classes(r)
        if ids:
            names = ", ".join(f"{class_name(r, c)} ({counts[c]})" for c in ids)
            robust.append(f"{r['model']}: {names}")
    which = (" — here " + "; ".join(robust) + " reference boxes") if robust else ""
    return (
        "Accuracy is measured against the **unsplit model's own detections** on the uncoded clip "
        f"(reference at the model profile's default score threshold{threshold_text(runs)}), not against "
        f"human ground truth; the tested detections are taken at score threshold {EVAL_THRESHOLD}. AP is "
        "COCO's 101-point interpolated average precision (pycocotools-equivalent, checked against it). "
        "Person AP@0.5 is the person class at IoU 0.5; robust mAP@0.5 averages AP@0.5 over the person "
        f"and vehicle classes ({', '.join(robust_labels(runs[0]))}) with at least "
        f"{min_boxes(runs[0])} reference boxes in the measured frames{which}: the detector's rare "
        "spurious classes (traffic light, bird, …) are left out.\n")


def threshold_text(runs):
    known = [(r["model"], r["profile"]["score_threshold"]) for r in runs
             if r["profile"].get("score_threshold") is not None]
    if not known:
        return ""
    if len(known) == len(runs) and len({t for _, t in known}) == 1:
        return f", {known[0][1]:g}" + (" for both models" if len(runs) == 2 else "")
    return ": " + ", ".join(f"{t:g} for {m}" for m, t in known)


def source_rate_sentence(runs):
    for r in runs:
        src = source_video_kbit(r)
        if src:
            return (f"For scale: the source file {r['clip']} itself (DivX 3 / MS-MPEG-4v3, as distributed) is "
                    f"{src:.0f} kbit/s.")
    return ""


def size_header(runs, codec, role):
    sizes = list(OrderedDict.fromkeys(r["sizes"].get(role) for r in runs if r["sizes"].get(role)))
    return f"{codec} {' / '.join(sizes)}" if sizes else f"{codec} {role} size"


def headline_value(run, split, criterion, candidate, points, key, bar):
    """(kbit/s, point) from summary.json if it has the row, else computed from the points."""
    best = cheapest(points, key, bar)
    row = next((h for h in run["summary"].get("headline", []) if h.get("split") == split
                and h.get("criterion") == criterion and h.get("candidate") == candidate), None)
    if row is None:
        return (best["kbit_per_s"] if best else None), best
    mine = best["kbit_per_s"] if best else None
    if (mine is None) != (row["kbit_per_s"] is None) or (mine and abs(mine - row["kbit_per_s"]) > 1e-6 * mine):
        print(f"plot.py: warning: {run['name']} {split} {criterion} {candidate}: summary.json says "
              f"{row['kbit_per_s']}, the points say {mine}", file=sys.stderr)
    return row["kbit_per_s"], best


def headline_cells(run, split, criterion, key, bar):
    """{column: (kbit/s, point)} for the features and each anchor column of one row."""
    feats = [p for p in run["results"] if p["split"] == split]
    cells = {FEATURES: headline_value(run, split, criterion, FEATURES, feats, key, bar)}
    for codec, role in HEADLINE_ANCHORS:
        m = anchor_method(run, codec, role)
        pts = [a for a in run["anchors"] if a["method"] == m]
        cells[(codec, role)] = headline_value(run, split, criterion, m, pts, key, bar) if pts else (None, None)
    return cells


def at_ladder_floor(run, col, point):
    """Whether `point` is the cheapest coded point of its anchor curve: the ladder ends there,
    so the rate that just keeps the bar is lower than the one shown."""
    if point is None:
        return False
    m = anchor_method(run, *col)
    rates = [a["kbit_per_s"] for a in run["anchors"] if a["method"] == m]
    return bool(rates) and point["kbit_per_s"] <= min(rates)


def ceiling_misses(run, role, key, bar):
    c = ceiling(run, run["sizes"].get(role))
    return c is not None and key(c) is not None and key(c) < bar


def headline_row(run, split, crit, cells):
    criterion, label, key, bar = crit
    rates = [v[0] for v in cells.values() if v[0] is not None]
    low = min(rates) if rates else None

    def cell(col):
        v = cells[col][0]
        if v is None:
            missed = col != FEATURES and ceiling_misses(run, col[1], key, bar)
            return "–*" if missed else "–"
        text = fmt_rate(v)
        if col != FEATURES and at_ladder_floor(run, col, cells[col][1]):
            text = "≤ " + text
        return f"**{text}**" if v == low else text

    best = cells[FEATURES][1]
    who = setting_label(best) if best else "–"
    return [run["model"], split, label, cell(FEATURES), who] + [cell(c) for c in HEADLINE_ANCHORS]


def verdict(run, split, crit, cells):
    criterion, label, key, bar = crit
    f = cells[FEATURES][0]
    anchors = [(cells[c][0], anchor_method(run, *c)) for c in HEADLINE_ANCHORS if cells[c][0] is not None]
    head = f"{run['model']} at {split}, {label}: "
    if not coded_anchors(run):
        return head + (f"features need {fmt_rate(f)} kbit/s" if f is not None else "no feature setting reaches the bar") + "; this run measured no video anchors."
    if f is None and not anchors:
        return head + "neither the features nor any video anchor reach the bar at the measured rates."
    if f is None:
        v, m = min(anchors)
        return head + f"no feature setting reaches the bar; the cheapest video anchor, {m}, needs {fmt_rate(v)} kbit/s."
    if not anchors:
        return head + f"only the features reach the bar ({fmt_rate(f)} kbit/s); no video anchor does."
    v, m = min(anchors)
    text = head + f"features need {ratio(f, v)} the bits of the cheapest video anchor, {m} ({fmt_rate(f)} vs {fmt_rate(v)} kbit/s)"
    x265 = cells[("x265", "model")][0]
    xm = anchor_method(run, "x265", "model")
    if x265 is not None and xm != m:
        text += f"; {ratio(f, x265)} those of {xm}"
    elif x265 is None and xm and ceiling_misses(run, "model", key, bar):
        text += f"; {xm} cannot reach it at any rate (its uncoded ceiling misses the bar)"
    return text + "."


def ratio(a, b):
    r = a / b
    return f"{r:.2f}×" if r < 1 else f"{r:.1f}×" if r < 10 else f"{r:.0f}×"


def headline_section(runs):
    L = ["## Headline: lowest rate that keeps the accuracy bar\n"]
    L.append(
        "For each split point: the lowest kbit/s any feature method needs to stay at or above person "
        "AP@0.5 = 0.98 and at or above robust mAP@0.5 = 0.95 against the reference, next to what x264, "
        "x265 and JPEG on the input video need for the same (at the source size and at the model's "
        "input size; then the unsplit model on the decoded frames). The cheapest cell of each row is "
        "**bold**. `–` = no measured point reaches the bar (the ladders are finite; this says nothing "
        "about rates above the ladder); `≤` = already the cheapest point of that ladder, so the video needs "
        "less than that; `–*` = not even the uncoded I420 frames at that size reach it, "
        "so no video rate can (see the ceilings below).\n")
    header = ["model", "split", "bar", "features kbit/s", "feature setting that achieves it"]
    header += [size_header(runs, c, r) for c, r in HEADLINE_ANCHORS]
    rows, verdicts = [], []
    for r in runs:
        for split in splits_of(r):
            for crit in BARS:
                cells = headline_cells(r, split, crit[0], crit[2], crit[3])
                rows.append(headline_row(r, split, crit, cells))
                verdicts.append(verdict(r, split, crit, cells))
    L += md_table(header, rows)
    if len(runs) > 1:
        L.append("Model-size columns: " + "; ".join(f"{r['model']} {r['sizes'].get('model', '–')}" for r in runs) + ".\n")
    L += [f"- {v}" for v in verdicts] + [""]
    L += [c + "\n" for c in (robust_caveat(r) for r in runs) if c]
    L += ceiling_section(runs)
    return L


def robust_caveat(run):
    """A sentence when some robust classes are detected perfectly at every video anchor point (static
    objects, typically): wherever they are, the robust bar only constrains the other classes."""
    ids, _ = robust_classes(run)
    anchors = [a for a in run["anchors"] if acc(a, "ap50_per_class")]
    if len(ids) < 2 or not anchors:
        return None

    def perfect(p, c):
        return (acc(p, "ap50_per_class") or {}).get(c, 0) >= 0.9995

    always = [c for c in ids if all(perfect(a, c) for a in anchors)]
    rest = [c for c in ids if c not in always]
    if not always or not rest:
        return None
    feats = [p for p in run["results"] if acc(p, "ap50_per_class")]
    n_feat = sum(all(perfect(p, c) for c in always) for p in feats)
    low = min(a["kbit_per_s"] for a in anchors)
    need = 1 - (1 - BARS[1][3]) * len(ids) / len(rest)
    text = (f"Caveat ({run['model']}): {', '.join(class_name(run, c) for c in always)} reach AP@0.5 = 1.000 "
            f"at every video anchor point (down to {fmt_rate(low)} kbit/s) and at {n_feat} of {len(feats)} "
            f"feature points. Wherever they do, robust mAP@0.5 ≥ {BARS[1][3]:g} only asks for a mean AP@0.5 "
            f"≥ {need:.2f} over {', '.join(class_name(run, c) for c in rest)}: a much weaker bar than "
            f"person AP@0.5 ≥ {BARS[0][3]:g}.")
    if run["frames"] < FULL_CLIP_FRAMES:
        text += (f" Which classes have ≥ {ROBUST_MIN_BOXES} reference boxes depends on the number of "
                 f"frames measured ({run['frames']} here).")
    return text


def ceiling_section(runs):
    L = ["### Ceiling of the video path: uncoded I420 frames\n",
         "Raw 4:2:0 frames (no coding) at each size, run through the unsplit model: the best any video "
         "codec can do at that size. Not a way of sending (the rate is the raw I420 rate).\n"]
    rows = []
    for r in runs:
        for a in sorted((a for a in r["anchors"] if is_ceiling(a)), key=lambda a: -area(size_of(a))):
            marks = [("✓" if BARS[i][2](a) is not None and BARS[i][2](a) >= BARS[i][3] else "✗") for i in range(2)]
            rows.append([r["model"], size_of(a), fmt_rate(a["kbit_per_s"]),
                         f"{fmt(a.get('person_ap50'), 3)} {marks[0]}", f"{fmt(acc(a, 'map50_robust'), 3)} {marks[1]}",
                         fmt(acc(a, "map50_all"), 3)])
    if not rows:
        return []
    return L + md_table(["model", "size", "kbit/s (raw I420)", "person AP@0.5 (bar 0.98)",
                         "robust mAP@0.5 (bar 0.95)", "mAP@0.5 (all classes)"], rows)


def bd_section(runs, accuracy="robust mAP50", title="robust mAP@0.5"):
    L = [f"## BD-rate against the video anchors (equal {title})\n",
         "Bjøntegaard delta rate (PCHIP through each curve's Pareto front, averaged over the overlapping "
         f"{title} interval; eval/src/bdrate.rs). Negative = the feature method needs fewer bits than "
         "the anchor at the same accuracy. Only curves with at least one finite BD-rate are listed; "
         "`n/a` = no overlap with that anchor's accuracy range or too few distinct points.\n"]
    cols = bd_columns(runs)
    header = ["model", "split", "method"] + [f"vs {size_header(runs, c, r)}" for c, r in cols]
    rows, skipped = [], OrderedDict()
    for r in runs:
        for (split, method), by_anchor in bd_table(r, accuracy):
            vals = [bd_cell(by_anchor.get(anchor_method(r, c, role))) for c, role in cols]
            if all(v in ("n/a", "") for v in vals):
                note = next((b.get("note") for b in by_anchor.values() if b.get("note")), "no finite BD-rate")
                skipped.setdefault(note, OrderedDict()).setdefault(f"{r['model']} {split}", []).append(method)
                continue
            rows.append([r["model"], split, method] + vals)
    if not rows:
        L.append("No curve has a finite BD-rate against any anchor.\n")
    else:
        L += md_table(header, rows)
    for note, where in skipped.items():
        listed = "; ".join(f"{k}: {', '.join(ms)}" for k, ms in where.items())
        L.append(f"Not listed ({note}): {listed}.\n")
    return L


def rate_control_section(runs):
    """How close rate control (fmapenc's, or x265's on the tiled mosaic) keeps the rate to its
    target (bitrate=…)."""
    rows = []
    for r in runs:
        for p in r["results"]:
            m = re.search(r"\bbitrate=(\d+)", p.get("encoder") or "")
            if not m:
                continue
            lo_hi = p.get("kbit_per_s_10s_range")
            rows.append([r["model"], p["split"], p["method"], m.group(1), f"{p['kbit_per_s']:.1f}",
                         "" if not lo_hi else f"{lo_hi[0]:.1f} – {lo_hi[1]:.1f}",
                         fmt(p.get("person_ap50"), 3), fmt(acc(p, "map50_robust"), 3)])
    if not rows:
        return []
    return ["## Rate control\n",
            "`fmapenc bitrate=N` (adaptive mode): the quality of each frame follows a target rate; "
            "likewise `x265enc bitrate=N` (its ABR rate control) on the tiled mosaic. The "
            "achieved rate over the whole clip, and its lowest and highest value over consecutive 10 s "
            "windows (key frames and content changes included).\n"] + md_table(
        ["model", "split", "method", "target kbit/s", "achieved kbit/s", "10 s windows, min – max",
         "person AP@0.5", "robust mAP@0.5"], rows)


# Issue 9's speed targets per tensor shape: (text, check of (encode ms, decode ms) per frame).
SPEED_TARGETS = {
    "[128, 52, 52]": ("encode ≤ 15 ms, decode ≤ 10 ms", lambda e, d: e <= 15 and d <= 10),
    "[256, 200, 272]": ("encode ≥ 5 frames/s", lambda e, d: 1000 / e >= 5),
}


def speed_section(path, env):
    """The codec alone, timed by codec-core/examples/speed.rs (eval-report.sh's last step)."""
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        cases = json.load(f)
    rows = []
    for c in cases:
        enc, dec = c["encode_wall_ms"], c["decode_wall_ms"]
        target, check = SPEED_TARGETS.get(c["shape"], ("", None))
        met = "" if check is None else ("yes" if check(enc["mean"], dec["mean"]) else "**no**")
        rows.append([c["shape"], c["source"].replace(os.getcwd() + "/", ""), c["frames"],
                     f"{enc['mean']:.1f} ({enc['min']:.1f})", f"{dec['mean']:.1f} ({dec['min']:.1f})",
                     f"{1000 / enc['mean']:.1f}", target, met])
    when = ", ".join(f"{k.removeprefix('speed_').replace('_', ' ')} {env[k]}"
                     for k in ("speed_git_commit", "speed_date_utc", "speed_load_before") if k in env)
    return ["## Codec speed\n",
            "`fmapenc`'s default coding (adaptive) alone, on one core and without GStreamer: "
            "`codec-core/examples/speed.rs`, on NanoDet stage2 maps recorded from the start of the clip "
            "and of its panning crop (`scripts/record-maps.sh`, `scripts/make-pan.sh`: a moving camera, "
            "the motion search's hardest case) and on a synthetic stream of moving smooth maps at [256, 200, 272] "
            "(the thesis's first partition point), run after the rate–accuracy measurements, with nothing "
            "else of the report running. Milliseconds of wall time per frame, mean over the frames "
            "(the first, a key unit, included), the fastest frame in brackets; the targets are issue 9's. "
            "Criterion benches of the same streams: `cargo bench -p codec-core --bench codec` "
            f"(`FMAP_MAPS=DIR` for recorded maps).{' Measured at ' + when + '.' if when else ''}\n"] + md_table(
        ["tensor", "frames from", "frames", "encode ms/frame", "decode ms/frame", "encode frames/s",
         "target", "met"], rows)


def lever_section(runs):
    """The adaptive mode's ablation: each lever switched from its default, its BD-rate against the
    defaults (summary.json "levers"), from whichever runs measured one."""
    rows = []
    for r in runs:
        by_variant = OrderedDict()
        for lv in r["summary"].get("levers", []):
            by_variant.setdefault((lv["split"], lv["variant"], lv["baseline"]), {})[lv["accuracy"]] = lv
        for (split, variant, baseline), acc_rows in by_variant.items():
            any_row = next(iter(acc_rows.values()))
            ms = any_row.get("encode_ms_delta")
            rows.append([r["model"], split, variant.split(", ", 1)[1], baseline,
                         bd_cell(acc_rows.get("person AP50")), bd_cell(acc_rows.get("robust mAP50")),
                         "" if ms is None else f"{ms:+.1f}"])
    if not rows:
        return []
    return ["## Ablation: the adaptive mode's levers\n",
            "Each lever of the adaptive mode switched from its default in turn, on the same quality "
            "ladder: the BD-rate of the variant against the defaults (positive = the variant costs "
            "that many more bits at equal accuracy; for a lever that is on by default, what turning "
            "it off costs), and its effect on the encoding time per frame (wall time through "
            "fmapenc, noisy on a shared machine). Task-aware channel weights (`channel-weights`, "
            "from `fmap-calibrate`) are off by default, so their row turns them on. The "
            "rate-control row compares `bitrate=` targets with the constant-quality ladder.\n"] + md_table(
        ["model", "split", "variant", "against", "BD-rate (person AP@0.5)", "BD-rate (robust mAP@0.5)",
         "encode ms/frame Δ"], rows)


def bd_columns(runs):
    """The (codec, size role) anchor columns some run has a BD-rate row for."""
    cands = HEADLINE_ANCHORS + [("JPEG", "model")]
    have = {(r["name"], b["anchor"]) for r in runs for b in r["summary"].get("bd_rate_vs_anchors", [])}
    return [c for c in cands if any((r["name"], anchor_method(r, *c)) in have for r in runs)]


def bd_table(run, accuracy="robust mAP50"):
    """[((split, method), {anchor: row})] at one accuracy, in the order of the splits and methods in
    results.json (rows without an accuracy field are from runs before person-AP BD-rates)."""
    table = {}
    for b in run["summary"].get("bd_rate_vs_anchors", []):
        if b.get("accuracy", "robust mAP50") != accuracy:
            continue
        table.setdefault((b["split"], b["method"]), {})[b["anchor"]] = b
    splits = splits_of(run)
    methods = list(OrderedDict.fromkeys(p["method"] for p in run["results"]))

    def order(k):
        return (splits.index(k[0]) if k[0] in splits else len(splits),
                methods.index(k[1]) if k[1] in methods else len(methods), k)
    return sorted(table.items(), key=lambda kv: order(kv[0]))


def bd_cell(b):
    if b is None:
        return ""
    return "n/a" if b.get("bd_rate_percent") is None else f"{b['bd_rate_percent']:+.0f}%"


def plots_section(runs, plots_dir, md_dir):
    L = ["## Plots\n",
         "Per split point: rate against accuracy (feature methods in colour, one hue per family: "
         "adaptive copper, quantization blue, uni-directional TSS green, bi-directional TSS orange, closed-loop red, "
         "tiled 8-bit mosaic purple; marker and line style give the entropy coder; the video anchors in "
         "grey, dark = model input size, light = source size; hexagons = uncoded I420 ceilings; black star "
         "= raw float; "
         "red lines = the bars), then, like the thesis's Figs. 4.14–4.21, rate and accuracy against "
         "the quantizer bits (the entropy coders are lossless, so a method's entropy variants share "
         "one accuracy curve; the tiled method is always 8-bit and left out).\n"]
    for r in runs:
        for split in splits_of(r):
            L.append(f"### {r['model']}, {split}\n")
            for base in (plot_split(r, split, plots_dir), plot_bits(r, split, plots_dir)):
                if base:
                    rel = os.path.relpath(base, md_dir)
                    L.append(f"![{os.path.basename(base)}]({rel}.png)\n\n([SVG]({rel}.svg))\n")
    return L


def correlation_section(runs, plots_dir, md_dir):
    have = [r for r in runs if r["correlation"]]
    if not have:
        return []
    L = ["## Temporal correlation (thesis sec. 4.2)\n",
         "SSIM (scikit-image's definition with the Gaussian window, σ = 1.5; data range 255 for the "
         "grey video frames; for feature maps max − min over both tensors of the pair, SSIM averaged "
         "over channels) and MSE "
         "between items `lag` frames apart: the decoded video's grey levels and every cut tensor. "
         "NMSE = MSE divided by the earlier item's mean square, comparable across splits and with the "
         "video. A tensor cut at several split points is listed once.\n"]
    for r in have:
        L.append(f"### {r['model']}\n")
        L += md_table(["series", "split(s)", "shape", "lag", "pairs", "SSIM mean", "SSIM p05", "SSIM min",
                       "MSE mean", "NMSE mean"], correlation_rows(r))
        L.append(correlation_sentence(r) + "\n")
        base = plot_correlation(r, plots_dir)
        if base:
            rel = os.path.relpath(base, md_dir)
            L.append(f"![{os.path.basename(base)}]({rel}.png)\n\n([SVG]({rel}.svg))\n")
    return L


def per_class_settings(run, split):
    """[(label, point)]: raw float, the cheapest feature setting per bar, and the x265
    model-size point nearest each of those rates."""
    feats = [p for p in run["results"] if p["split"] == split]
    x265m = anchor_method(run, "x265", "model")
    x265 = [a for a in run["anchors"] if a["method"] == x265m]
    out = []
    raw = next((p for p in feats if p["method"] == "raw float"), None)
    if raw:
        out.append(("raw float", raw))
    for _, label, key, bar in BARS:
        best = cheapest(feats, key, bar)
        if best:
            out.append((f"cheapest for {label}: {setting_label(best)}", best))
            near = nearest_rate(x265, best["kbit_per_s"])
            if near:
                out.append((f"{x265m} nearest that rate ({short_setting(near)})", near))
    merged = OrderedDict()
    for label, p in out:
        if id(p) in merged:  # one setting cheapest for both bars: one row, both reasons
            old = merged[id(p)][0]
            merged[id(p)] = (old.replace(": ", f" and {label.split('for ', 1)[-1].split(':')[0]}: ", 1)
                             if label.startswith("cheapest") and old.startswith("cheapest") else old, p)
        else:
            merged[id(p)] = (label, p)
    return list(merged.values())


def per_class_section(runs):
    L = ["## AP@0.5 per class at representative settings\n",
         f"Classes with at least {ROBUST_MIN_BOXES} reference boxes (reference box count in brackets) and "
         "the mean over all classes the reference has.\n"]
    for r in runs:
        ids, counts = robust_classes(r)
        for split in splits_of(r):
            settings = per_class_settings(r, split)
            if not settings:
                continue
            L.append(f"### {r['model']}, {split}\n")
            header = ["setting", "kbit/s"] + [f"{class_name(r, c)} ({counts[c]})" for c in ids]
            header += ["robust mAP@0.5", "all classes mAP@0.5"]
            rows = []
            for label, p in settings:
                per = acc(p, "ap50_per_class") or {}
                rows.append([label, fmt_rate(p.get("kbit_per_s"))] + [fmt(per.get(c), 3) for c in ids]
                            + [fmt(acc(p, "map50_robust"), 3), fmt(acc(p, "map50_all"), 3)])
            L += md_table(header, rows)
    return L


def snr_cell(p):
    d = p.get("distortion")
    if not d:
        return "–"
    s = d.get("snr_db")
    return "∞" if s is None or s == float("inf") else f"{s:.1f}"


def feature_rows(run):
    rows = []
    for split in splits_of(run):
        for x in (p for p in run["results"] if p["split"] == split):
            rows.append([
                x["split"], x["method"], f"`{x.get('encoder') or 'raw'}`", bits_of(x) or "–",
                f"{x['kbit_per_s']:.1f}", f"{x['bytes_per_frame_mean']:.0f}",
                x.get("bytes_per_frame_p95", "–"), fmt(x.get("person_ap50"), 3),
                fmt(acc(x, "map50_robust"), 3), fmt(acc(x, "map50_all"), 3), fmt(acc(x, "map50_95_all"), 3),
                snr_cell(x), fmt(x.get("encode_ms_per_frame"), 2), fmt(x.get("decode_ms_per_frame"), 2),
                x.get("network_frames", "–")])
    return rows


def anchor_rows(run):
    rows = []
    for x in run["anchors"]:
        rows.append([
            x["method"], f"`{(x.get('encoder') or '').split(' ! ')[0]}`", f"{x['kbit_per_s']:.1f}",
            f"{x['bytes_per_frame_mean']:.0f}", fmt(x.get("person_ap50"), 3), fmt(acc(x, "map50_robust"), 3),
            fmt(acc(x, "map50_all"), 3), fmt(acc(x, "map50_95_all"), 3), fmt(x.get("encode_s"), 2),
            fmt(x.get("decode_detect_s"), 2)])
    return rows


def all_points_section(runs):
    L = ["## All measured points\n",
         "Feature points: encode / decode in ms per frame (wall time of the coding stage), network "
         "frames = frames the back network actually ran on (the others had a bit-identical decoded "
         "tensor already detected, see the detection cache). Video anchors: encode and decode + detect "
         "in seconds for the whole clip.\n"]
    for r in runs:
        L.append(f"### {r['model']}: feature methods\n")
        L += md_table(["split", "method", "setting", "bits", "kbit/s", "bytes/frame", "p95 bytes", "person AP50",
                       "robust mAP50", "mAP50 (all)", "mAP50-95 (all)", "feature SNR dB", "encode ms/frame",
                       "decode ms/frame", "network frames"], feature_rows(r))
        if r["anchors"]:
            L.append(f"### {r['model']}: video anchors ({r['frames']} frames)\n")
            L += md_table(["method", "setting", "kbit/s", "bytes/frame", "person AP50", "robust mAP50",
                           "mAP50 (all)", "mAP50-95 (all)", "encode s", "decode + detect s"], anchor_rows(r))
    return L


def run_facts(r):
    info = r["info"]
    cache = info.get("detection_cache") or {}
    facts = [("model", info.get("model")), ("video", info.get("video")), ("frames", info.get("frames")),
             ("splits", ", ".join(info.get("splits") or []) or None), ("settings", info.get("settings")),
             ("anchor ladder", info.get("anchors")), ("tiled method", info.get("tiling")),
             ("jobs", info.get("jobs")), ("ONNX threads per run", info.get("onnx_threads_per_run")),
             ("wall time", f"{info['wall_seconds'] / 60:.1f} min" if info.get("wall_seconds") else None),
             ("detection cache", f"{'on' if cache.get('enabled') else 'off'}: {cache.get('frames_known')} frames "
              f"answered from identical decoded tensors, back network run on {cache.get('frames_run')}"
              if cache else None),
             ("class names from", r["labels_from"])]
    return [(k, v) for k, v in facts if v is not None]


METHOD_NOTES = (
    "Method notes: video anchors use a 2 s GOP (key-int-max = 20 at 10 fps) and no B-frames; x264 "
    "`pass=quant` at a constant quantizer, x265 constant QP, both `speed-preset=fast`; JPEG codes every "
    "frame on its own. The source is decoded and converted to I420 before coding. The model-size anchors "
    "(416x416 for NanoDet, 300x300 for SSD) are downscaled by the camera with exactly the model's own "
    "resize arithmetic (bilinear, pixel-centre aligned stretch, rounded to 8-bit), not `videoscale`, so "
    "without coding the server sees what the model sees: the strongest anchor; boxes are scaled back "
    "to source coordinates before scoring. The uncoded I420 point per size sends raw 4:2:0 frames: the "
    "accuracy ceiling of the video path, shown separately and not a headline candidate. The tiled "
    "method (Choi & Bajić) runs through the `fmaptile` and `fmapuntile` elements: each float tensor "
    "quantized to 8 bits with a range kept from frame to frame while it fits (8-bit model tensors keep "
    "their codes, scale and zero point), the channels tiled in a near-square grid with sides multiple "
    "of 16, coded as I420 by x265 or x264 (lossless or a QP ladder) or as GRAY8 by PNG, with the side "
    "information coded robustly in the picture itself. The adaptive mode's quality is its quantizer "
    "step as a fraction of each tensor's standard deviation; `bitrate=N` points use its rate control. "
    "\n")


def provenance_section(runs, commands, env):
    L = ["## How this was produced\n"]
    if commands and os.path.exists(commands):
        with open(commands) as f:
            L += ["```sh"] + [line.rstrip() for line in f] + ["```\n"]
    if env:
        L += md_table(["environment", ""], list(env.items()))
    for r in runs:
        L.append(f"### {r['model']}: run.json\n")
        if r["info"]:
            L += md_table(["", ""], run_facts(r))
        else:
            L.append(f"No run.json (older fmap-eval output); class names from {r['labels_from'] or 'nowhere (ids)'}.\n")
    L.append(METHOD_NOTES)
    return L


# ---------------------------------------------------------------------------------------------


def read_env(path):
    env = OrderedDict()
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                # "frames=200 settings=quick" holds several entries; other values may contain spaces.
                for item in re.split(r"\s(?=[a-z_]+=)", line.strip()):
                    k, _, v = item.partition("=")
                    if k:
                        env[k] = v
    return env


def check_links(md_path):
    md_dir = os.path.dirname(os.path.abspath(md_path))
    with open(md_path) as f:
        links = re.findall(r"\]\(([^)\s]+)\)", f.read())
    missing = [l for l in links if not re.match(r"[a-z]+://", l) and not os.path.exists(os.path.join(md_dir, l))]
    for l in missing:
        print(f"plot.py: error: {md_path} links to missing {l}", file=sys.stderr)
    return not missing


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", nargs="+", required=True, help="fmap-eval output dirs, basename = model key")
    ap.add_argument("--env", help="env.txt (key=value lines) for the provenance table")
    ap.add_argument("--commands", help="commands.txt to quote")
    ap.add_argument("--plots", default="docs/results", help="directory of the PNG/SVG plots")
    ap.add_argument("--markdown", default="docs/results.md")
    ap.add_argument("--speed", help="codec timing written by codec-core/examples/speed.rs (SPEED_JSON)")
    ap.add_argument("--ablation", nargs="*", default=[],
                    help="fmap-eval output dirs of `--settings ablation` runs (basename = model key)")
    a = ap.parse_args()
    runs = unique_names([load(r) for r in a.runs])
    md_dir = os.path.dirname(os.path.abspath(a.markdown))
    L = scope_section(runs)
    L += headline_section(runs)
    L += bd_section(runs, "person AP50", "person AP@0.5")
    L += bd_section(runs)
    L += lever_section(runs + [load(d) for d in a.ablation])
    L += rate_control_section(runs)
    L += speed_section(a.speed, read_env(a.env))
    L += plots_section(runs, a.plots, md_dir)
    L += correlation_section(runs, a.plots, md_dir)
    L += per_class_section(runs)
    L += all_points_section(runs)
    L += provenance_section(runs, a.commands, read_env(a.env))
    os.makedirs(md_dir, exist_ok=True)
    with open(a.markdown, "w") as f:
        f.write("\n".join(L))
    if not check_links(a.markdown):
        sys.exit(1)


if __name__ == "__main__":
    main()
