"""coursekit: audio-driven talking-face generation guided by speech-related action units.

Layers (each imports only those below it)::

    audio, video              reading and writing media
    face, au                  landmarks and action units
    data                      corpora (GRID, the shipped samples) and datasets
    models                    Audio2AU, TCSAN, decoders, diffusion renderer
    losses, metrics
    train, infer
    cli, course               command line and the notebook course
"""

import os as _os

# On a small shared CPU (the course's 2-core machines, a laptop running a notebook server),
# OpenMP threads that spin while waiting for work slowed training steps here about 10x.
# Sleeping instead costs nothing measurable. Takes effect if coursekit is imported before torch.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
