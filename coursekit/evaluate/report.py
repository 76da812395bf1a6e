"""The evaluation report: :func:`write_report` (Markdown + CSV in the paper's layout),
:func:`summary_metrics` (one row as a flat dict) and :func:`format3` (3 significant digits)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLUMNS = {"psnr": "PSNR", "ssim": "SSIM", "lmd": "LMD", "au_f1": "AU-F1", "au_acc": "Acc",
           "lm_au_f1": "LM-AU-F1", "lse_d": "LSE-D", "lse_c": "LSE-C", "abs_offset": "|offset|"}
"""Summary metric key -> column title of :func:`write_report` (the paper's layout)."""


def format3(value) -> str:
    """A float with 3 significant digits (``0.500``, ``27.3``, ``1234``); ``""`` for None or
    NaN; an int as it is (``12``); anything else as ``str``."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    v = float(value)
    if not np.isfinite(v):
        return "" if np.isnan(v) else ("inf" if v > 0 else "-inf")
    if abs(v) >= 999.5:
        return f"{v:.0f}"
    return f"{v:#.3g}".rstrip(".")


def summary_metrics(results: dict, row: str = "model") -> dict:
    """One row of :func:`~coursekit.evaluate.evaluate_checkpoint` as a flat
    ``{metric: float}`` dict (measured values only, per-AU F1 as ``au_f1_AU25`` ...), e.g.
    for a notebook's ``metrics.json``."""
    values = results["rows"][row]
    out = {k: values[k] for k in COLUMNS if values.get(k) is not None}
    for prefix in ("au_f1", "lm_au_f1"):
        for au, v in zip(results["aus"], values.get(f"{prefix}_per_au") or []):
            out[f"{prefix}_{au}"] = v
    return out


def write_report(results: dict, out_dir, title: str = "Evaluation") -> tuple[Path, Path]:
    """Write ``evaluation.md`` (the paper's layout: one row per model or baseline, columns
    PSNR, SSIM, LMD, AU-F1, Acc, LM-AU-F1, LSE-D, LSE-C, |offset|; then per-AU F1 tables)
    and ``evaluation.csv`` (the same numbers, per-AU F1 as extra columns) into ``out_dir``;
    numbers with 3 significant digits, unmeasured cells empty. Returns their paths."""
    import csv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, aus = results["rows"], results["aus"]
    cols = [k for k in COLUMNS if any(r.get(k) is not None for r in rows.values())]
    cell = lambda v: format3(v) or "–"  # noqa: E731
    lines = [f"# {title}", "",
             f"Checkpoint `{results['checkpoint']}` ({results['renderer']} renderer, "
             f"{results['image_size']} px"
             + (f", {results['steps']} steps" if results["steps"] else "")
             + f", seed {results['seed']}); data `{results['data']}`: {len(results['clips'])} "
             f"clips, {results['n_frames']} frames; judge `{results['judge']}`; sync expert "
             f"`{results['syncnet']}`; {format3(results['seconds'])} s."
             + _split_note(results), "",
             "| frames | " + " | ".join(COLUMNS[k] for k in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(cell(r.get(k)) for k in cols) + " |")
    lines += ["", "Rows: *shuffled audio*: the model driven by another utterance's audio; "
              "*position only*: no audio and no frames, each AU guessed from the frame's "
              "position in the clip (the training clips' rate there); *copy identity*: the "
              "identity frame repeated; *real frames*: the video itself (upper bounds).", "",
              "PSNR (dB), SSIM: against the real frames (higher is better). LMD: mouth "
              "landmark distance in crop pixels, dlib landmarks tracked on the frames vs the "
              "dataset's (lower is better; *real frames*: the tracker's own error). AU-F1, "
              "Acc: AU occurrence read by the judge (mean of the AUs). LM-AU-F1: AU occurrence "
              "read from the tracked landmarks. LSE-D (lower), LSE-C (higher), |offset| "
              "(frames): the sync expert on the frames and the clip's own audio.", "",
              "On GRID-like data the face barely moves, so copying the identity frame already "
              "scores a high PSNR and SSIM: image quality says little about whether the mouth "
              "follows the audio; read AU-F1, LMD and LSE beside it."]
    for prefix, what in (("au_f1", "read by the judge"), ("lm_au_f1", "read from the landmarks")):
        have = {n: r[f"{prefix}_per_au"] for n, r in rows.items() if r.get(f"{prefix}_per_au")}
        if have:
            lines += ["", f"AU occurrence F1 per AU, {what}:", "",
                      "| frames | " + " | ".join(aus) + " | mean |",
                      "|---|" + "---:|" * (len(aus) + 1)]
            lines += [f"| {n} | " + " | ".join(cell(v) for v in f1) + f" | {cell(np.mean(f1))} |"
                      for n, f1 in have.items()]
    for note in results.get("notes", []):
        lines += ["", f"Note: {note}."]
    md = out / "evaluation.md"
    md.write_text("\n".join(lines) + "\n")
    path = out / "evaluation.csv"
    fields = ["frames", *COLUMNS, *(f"{p}_{au}" for p in ("au_f1", "lm_au_f1") for au in aus)]
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(fields)
        for name, r in rows.items():
            flat = {k: r.get(k) for k in COLUMNS}
            for p in ("au_f1", "lm_au_f1"):
                flat.update({f"{p}_{au}": v for au, v in zip(aus, r.get(f"{p}_per_au") or [])})
            writer.writerow([name, *(format3(flat.get(k)) for k in fields[1:])])
    return md, path


def _split_note(results: dict) -> str:
    """`` Test speakers ...`` when the clips include speakers never trained on, else ``""``."""
    unseen = results.get("test_speakers") or []
    if not unseen:
        return ""
    n = sum(c.split("/")[0] in unseen for c in results["clips"])
    return (f" Test speakers (never trained on): {', '.join(unseen)}, {n} of the clips; the "
            "others are held-out utterances of the training speakers.")
