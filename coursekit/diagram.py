"""The course's one architecture diagram, drawn by code, and the references the notebooks cite.

:func:`pipeline_diagram` draws every stage of the course as boxes and arrows::

    speech -> MFCC windows (12 x 28) -> Audio2AU -> AU stream
                     '-> audio encoder                 |
    face photo -> identity encoder                     |
    AU + audio + identity -> TCSAN fusion -> renderer (image decoder | diffusion) -> video
    AU stream -> motion model -> thin-plate warp -> painter -> video     (the default route)

A notebook names the stage(s) it covers (``highlight="mfcc"``, see :data:`STAGES`); those boxes
are filled with an accent from the Okabe-Ito palette (safe for colour-blind readers) and drawn
with a thick outline, so they stand out in greyscale too; everything else is grey.

:func:`references` returns the Markdown list of the papers and data the notebooks cite, from
:data:`REFERENCES` (the only copy of that text: every notebook renders it from here).
"""

from __future__ import annotations

from collections.abc import Iterable

ACCENT = "#E69F00"
"""Fill of highlighted boxes (Okabe-Ito orange)."""
ACCENT_EDGE = "#000000"
GREY_FILL, GREY_EDGE, GREY_TEXT = "#F0F0F0", "#A0A0A0", "#606060"
NEUTRAL_FILL = "#FFFFFF"
"""Fill of every box when nothing is highlighted."""

BOX_H = 0.9
_LAYOUT = """
speech     1.1  4.4  1.8  speech
mfcc       3.8  4.4  2.7  MFCC windows/12 × 28 per frame
audio2au   6.7  4.4  2.2  Audio2AU
aus        9.3  4.4  2.2  AU stream/5 speech AUs
audio_enc  6.7  2.8  2.5  audio encoder
face       1.1  1.2  2.0  face photo/aligned crop
id_enc     6.7  1.2  2.5  identity encoder
tcsan     12.2  2.8  2.3  TCSAN fusion
renderer  15.2  2.8  2.4  renderer:/image decoder/or diffusion
motion    12.2  6.0  2.3  motion model
warp      15.0  6.0  2.6  thin-plate warp/of the photo
painter   17.7  6.0  1.9  painter
video     19.8  4.4  1.6  video
"""
BOXES: dict[str, tuple[str, float, float, float]] = {
    name: (label.replace("/", "\n"), float(x), float(y), float(width))
    for name, x, y, width, label in (row.split(maxsplit=4) for row in _LAYOUT.strip().splitlines())
}
"""Box name -> (label, x centre, y centre, width), in the diagram's own units (from the table
``_LAYOUT``: name, x, y, width, label with ``/`` for line breaks)."""
ARROWS: tuple[tuple[str, str], ...] = (
    ("speech", "mfcc"), ("mfcc", "audio2au"), ("audio2au", "aus"), ("mfcc", "audio_enc"),
    ("face", "id_enc"), ("aus", "tcsan"), ("audio_enc", "tcsan"), ("id_enc", "tcsan"),
    ("tcsan", "renderer"), ("renderer", "video"),
    ("aus", "motion"), ("motion", "warp"), ("warp", "painter"), ("painter", "video"),
)
STAGES: dict[str, tuple[str, ...]] = {
    "mfcc": ("speech", "mfcc"),
    "faces": ("face", "aus"),
    "audio2au": ("audio2au", "aus"),
    "tcsan": ("audio_enc", "id_enc", "tcsan"),
    "renderer": ("renderer",),
    "warp": ("motion", "warp", "painter"),
    "training": ("audio2au", "audio_enc", "id_enc", "tcsan", "renderer", "motion", "painter"),
    "evaluation": ("video",),
}
"""Highlight key (what a notebook covers) -> the boxes it lights up."""


def _highlighted(highlight: str | Iterable[str] | None) -> set[str]:
    """The boxes of one key, of keys joined by ``,`` or ``+``, or of a list of keys."""
    if highlight is None:
        return set()
    keys = highlight.replace("+", ",").split(",") if isinstance(highlight, str) else highlight
    boxes = set()
    for key in (k.strip() for k in keys):
        if key not in STAGES:
            raise ValueError(f"pipeline_diagram: unknown highlight {key!r}; known: "
                             f"{', '.join(sorted(STAGES))}")
        boxes.update(STAGES[key])
    return boxes


def pipeline_diagram(highlight: str | Iterable[str] | None = None, ax=None):
    """Draw the course pipeline; return the ``matplotlib.figure.Figure``.

    Args:
        highlight: a key of :data:`STAGES` (``"mfcc"``, ``"faces"``, ``"audio2au"``,
            ``"tcsan"``, ``"renderer"``, ``"warp"``, ``"training"``, ``"evaluation"``), several
            joined by ``","`` or given as a list, or None (every box plain).
        ax: draw into these axes (their figure is returned); None makes a 12 x 3.8 inch figure
            with pyplot (so a notebook shows it at the end of the cell).

    Raises ValueError (one line, naming the known keys) for an unknown key.
    """
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    lit = _highlighted(highlight)
    if ax is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(12, 3.8))
        ax = fig.add_axes((0, 0, 1, 1))
    patches = {}
    for name, (label, x, y, width) in BOXES.items():
        height = BOX_H * (1.35 if label.count("\n") > 1 else 1.0)
        on, plain = name in lit, highlight is None
        face = ACCENT if on else NEUTRAL_FILL if plain else GREY_FILL
        edge = ACCENT_EDGE if on or plain else GREY_EDGE
        box = FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                             boxstyle="round,pad=0.05,rounding_size=0.15", facecolor=face,
                             edgecolor=edge, linewidth=2.4 if on else 1.0, gid=name)
        ax.add_patch(box)
        ax.text(x, y, label, ha="center", va="center", fontsize=8.5,
                color="black" if on or plain else GREY_TEXT,
                fontweight="bold" if on else "normal")
        patches[name] = box
    for a, b in ARROWS:
        on = highlight is None or (a in lit and b in lit)
        ax.add_patch(FancyArrowPatch(
            (BOXES[a][1], BOXES[a][2]), (BOXES[b][1], BOXES[b][2]), patchA=patches[a],
            patchB=patches[b], arrowstyle="-|>", mutation_scale=11, shrinkA=2, shrinkB=2,
            color="black" if on else GREY_EDGE, linewidth=1.6 if on else 1.0))
    ax.text(10.9, 6.75, "default route: the warp generator", fontsize=8.5, style="italic",
            color=GREY_TEXT)
    ax.text(10.9, 1.85, "the paper's route: fusion + renderer", fontsize=8.5,
            style="italic", color=GREY_TEXT)
    ax.set_xlim(0, 20.8)
    ax.set_ylim(0.5, 7.0)
    ax.axis("off")
    return ax.figure


REFERENCES: dict[str, str] = {
    "tcsan": (
        "S. Chen, Z. Liu, J. Liu, L. Wang. *Talking Head Generation Driven by Speech-Related "
        "Facial Action Units and Audio- Based on Multimodal Representation Fusion.* "
        "arXiv:2204.12756 [cs.CV], 2022. doi:10.48550/arXiv.2204.12756. The course's main "
        "source: MFCC windows, Audio2AU, TCSAN, AU classifier, image decoder."),
    "bmvc": (
        "S. Chen, Z. Liu, J. Liu, Z. Yan, L. Wang. *Talking Head Generation with Audio and "
        "Speech Related Facial Action Units.* British Machine Vision Conference (BMVC), 2021. "
        "arXiv:2110.09951. The conference version (a GRU in place of TCSAN); the text of "
        "arXiv:2204.12756 overlaps with it."),
    "journal": (
        "Z. Liu, X. Liu, S. Chen, J. Liu, L. Wang, C. Bi. *Multimodal Fusion for Talking Face "
        "Generation Utilizing Speech-related Facial Action Units.* Journal version with the "
        "attention-based disentanglement and the diffusion renderer. Project page: "
        "<https://mftfg-au.github.io/Multimodal_Fusion>; code: "
        "<https://github.com/MFTFG-AU/Multimodal-Fusion-for-Talking>."),
    "yu2020": (
        "L. Yu, J. Yu, M. Li, Q. Ling. *Multimodal Inputs Driven Talking Face Generation With "
        "Spatial-Temporal Dependency.* IEEE Transactions on Circuits and Systems for Video "
        "Technology 31(1):203-216, 2020. <https://ieeexplore.ieee.org/document/8995571>. "
        "Mouth landmarks as the step between speech and video, as in the warp route."),
    "grid": (
        "M. Cooke, J. Barker, S. Cunningham, X. Shao. *An audio-visual corpus for speech "
        "perception and automatic speech recognition.* The Journal of the Acoustical Society "
        "of America 120(5):2421-2424, 2006. doi:10.1121/1.2229005. The GRID corpus, released "
        "under CC BY 4.0 as *The Grid Audio-Visual Speech Corpus* (1.0), Zenodo, "
        "doi:10.5281/zenodo.3625687."),
    "tcn": (
        "S. Bai, J. Z. Kolter, V. Koltun. *An Empirical Evaluation of Generic Convolutional "
        "and Recurrent Networks for Sequence Modeling.* arXiv:1803.01271, 2018. The causal "
        "TCN that TCSAN makes non-causal."),
    "dlib": (
        "D. E. King. *Dlib-ml: A Machine Learning Toolkit.* Journal of Machine Learning "
        "Research 10:1755-1758, 2009. The face detector and 68-point landmark predictor."),
    "openface": (
        "T. Baltrušaitis, A. Zadeh, Y. C. Lim, L.-P. Morency. *OpenFace 2.0: Facial Behavior "
        "Analysis Toolkit.* IEEE International Conference on Automatic Face & Gesture "
        "Recognition (FG), 2018, pp. 59-66. The AU labels of the paper."),
}
"""Key -> one Markdown reference (identifiers checked against the papers' own pages)."""
CORE = ("tcsan", "bmvc", "journal", "yu2020", "grid")
"""What every notebook cites."""


def references(*extra: str) -> str:
    """A numbered Markdown list of :data:`CORE` then ``extra`` keys of :data:`REFERENCES`
    (each once). Raises ValueError (one line) for an unknown key."""
    keys = list(dict.fromkeys((*CORE, *extra)))
    unknown = [k for k in keys if k not in REFERENCES]
    if unknown:
        raise ValueError(f"references: unknown keys {unknown}; known: "
                         f"{', '.join(sorted(REFERENCES))}")
    return "\n".join(f"{i}. {REFERENCES[k]}" for i, k in enumerate(keys, 1))
