"""Renderers trained with ``motion="warp"``, driven by a recording.

A talker or diffusion checkpoint of ``motion="warp"`` (:data:`coursekit.models.config.MOTIONS`)
reads, beside the identity crop and the MFCC windows, each frame's warped identity and mouth
mask. In training they come from the clip's tracked landmarks (teacher forcing); here they are
made from the speech, as the warp generator (:mod:`coursekit.infer.warp`) makes its own:

1. the shipped warp generator's Audio2AU and motion model turn the raw MFCC windows (and,
   when given, the recording: its speech gate) into landmark displacements ``(T, 33, 2)``;
2. the crop's landmarks (the template's, since crops are aligned to it, unless given) are
   displaced by them (:func:`coursekit.warp.displace`);
3. :func:`coursekit.data.warped.warp_tensors` warps the identity crop to each frame's
   landmarks: ``warped (T, 3, S, S)`` and ``mouth_mask (T, 1, S, S)``;
4. the renderer refines the warped frames.
"""

from __future__ import annotations

import numpy as np

from ..data.warped import warp_tensors
from ..face import template
from ..warp import displace
from .generator import Generator


def motion_driver(device: str = "cpu"):
    """The shipped warp generator (``coursekit.assets``' ``"warp"``), whose Audio2AU and
    motion model make the landmark motion of a recording."""
    from .generator import load_generator

    return load_generator("warp", device)


def warp_inputs_from_speech(gen: Generator, driver, identity, mfcc, speech=None,
                            landmarks: np.ndarray | None = None):
    """``(warped (T, 3, S, S), mouth_mask (T, 1, S, S))`` on the identity's device for
    identity ``(3, S, S)`` in [-1, 1] and ``gen``-normalised MFCC windows ``(T, 12, 28)``
    (steps 1-3 of the module docstring); ``landmarks (68, 2)``: the crop's, in its pixels."""
    raw = mfcc.detach().cpu().numpy() * gen.mfcc_std + gen.mfcc_mean
    motion = driver.audio_motion(raw, speech)  # (T, 33, 2)
    source = (template(gen.image_size) if landmarks is None
              else np.asarray(landmarks, np.float32))
    return warp_tensors(identity, source, displace(source, motion))


def with_motion(gen: Generator, driver=None) -> Generator:
    """``gen`` (a ``motion="warp"`` renderer) made to take a recording: its ``render`` gets
    the warped identity and mouth mask from the speech (``driver``: a warp generator,
    default :func:`motion_driver`) and it :attr:`~Generator.hears_speech`."""
    driver = driver if driver is not None else motion_driver(str(gen.device))
    refine = gen.render

    def render(identity, mfcc, *, seed=0, steps=None, progress=False, speech=None,
               landmarks=None):
        warped, mask = warp_inputs_from_speech(gen, driver, identity, mfcc, speech, landmarks)
        return refine(identity, mfcc, seed=seed, steps=steps, progress=progress,
                      warped=warped, mouth_mask=mask)

    gen.render, gen.hears_speech = render, True
    return gen
