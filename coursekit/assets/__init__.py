"""The checkpoints shipped inside the package (package data), and the defaults among them.

Layout (``README.md`` here says how each file was made)::

    coursekit/assets/tiny/   small models trained on data_samples/ (64 px unless named 112)
        talker.pt diffusion.pt audio2au.pt au_classifier.pt judge.pt syncnet.pt
        face2vid.pt face2vid_no_temporal.pt (the temporal decoders of notebook 09)
    coursekit/assets/grid/   models trained on the GRID corpus
        warp.json (the warp generator: names its parts) audio2au.pt motion.pt [painter.pt]
        syncnet.pt (112 px sync expert) landmarks.pt (the text route's landmark predictor)

Every path to a shipped file goes through this module, so ``pip install coursekit`` (no
source checkout) finds them too:

* :func:`asset_path`: ``asset_path("tiny/judge.pt")``, None when it is not shipped;
* :func:`default_generator`: the generator ``coursekit generate`` uses without
  ``--checkpoint`` (:data:`DEFAULT_GENERATOR`, one constant so a better one can replace it);
  :data:`GENERATORS` names every shipped generator;
* :func:`default_scorers`: the judge (AU classifier) and sync expert that score generated
  faces of one size (:data:`SCORERS`).
"""

from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
"""The folder of the shipped checkpoints (``coursekit/assets``)."""

TINY_DIR = ASSETS_DIR / "tiny"
"""The tiny checkpoints trained on ``data_samples/``."""

GENERATORS = {"warp": "grid/warp.json", "diffusion": "tiny/diffusion.pt",
              "decoder": "tiny/talker.pt"}
"""Shipped generators by name (``coursekit generate --checkpoint warp``), relative to
:data:`ASSETS_DIR`: the warp generator (``coursekit.infer.warp``: a JSON file naming its
GRID-trained parts, ``grid/README.md``), the tiny diffusion renderer and the tiny image
decoder."""

DEFAULT_GENERATOR = GENERATORS["warp"]
"""The default generator, relative to :data:`ASSETS_DIR`: the warp generator, which moves
any photo's own pixels (sharp at the photo's resolution, real time on a CPU)."""

SCORERS = {64: ("tiny/judge.pt", "tiny/syncnet.pt"),
           112: ("tiny/judge112.pt", "tiny/syncnet112.pt")}
"""Face size -> ``(judge, sync expert)`` relative to :data:`ASSETS_DIR`."""


def asset_path(name: str) -> Path | None:
    """The shipped file (or folder) ``name`` relative to :data:`ASSETS_DIR`, e.g.
    ``"tiny/judge.pt"``; None when this install does not have it."""
    path = ASSETS_DIR / name
    return path if path.exists() else None


def default_generator() -> Path | None:
    """The default generator checkpoint (:data:`DEFAULT_GENERATOR`), None if not shipped."""
    return asset_path(DEFAULT_GENERATOR)


def default_scorers(image_size: int) -> tuple[Path | None, Path | None]:
    """``(judge, sync expert)`` for generated faces of ``image_size`` pixels: the shipped
    ones of :data:`SCORERS`, None for each that is not shipped for that size."""
    names = SCORERS.get(int(image_size), (None, None))
    judge, sync = (asset_path(name) if name else None for name in names)
    return judge, sync
