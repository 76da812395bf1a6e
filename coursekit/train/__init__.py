"""Training loops (CPU-friendly, resumable checkpoints).

* :mod:`coursekit.train.common` -- seeding, device choice, atomic checkpoints, CSV logs;
* :mod:`coursekit.train.trainer` -- the reusable loop (:class:`~coursekit.train.trainer.Trainer`:
  resumable checkpoints, gradient accumulation, AMP, EMA, DDP under ``torchrun``);
* :mod:`coursekit.train.audio2au` -- pre-training of the audio-to-AU module
  (:func:`~coursekit.train.audio2au.train_audio2au`, :func:`~coursekit.train.audio2au.evaluate_audio2au`).

Sub-modules are imported on use (``from coursekit.train.audio2au import train_audio2au``),
so importing this package stays cheap.
"""
