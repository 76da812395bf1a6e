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

__version__ = "0.1.0"
