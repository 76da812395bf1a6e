"""Notebook widgets (notebook 08): your own photo and voice -> a talking face; edit a mouth by AUs.

* :mod:`~coursekit.widgets.session`: :class:`Session`, ONE loaded generator (loaded once) and
  the face being worked on; AU-driven frames (:func:`render_with_aus`, :func:`au_sweeps`) and
  videos without reloading the checkpoint.
* :mod:`~coursekit.widgets.controls`: the ``ipywidgets`` (:func:`generator_app`,
  :func:`au_editor`), built on a session.
* :mod:`~coursekit.widgets.plots`: figures and measurements for display (AU sweep grids, the
  inference steps, lip motion).
* :mod:`~coursekit.widgets.samples`: faces and voices to try (the shipped samples, the
  astronaut).

Everything is importable from ``coursekit.widgets`` itself, as are the inference names the
notebook uses with them (:func:`~coursekit.infer.crop_face`, :func:`~coursekit.infer.to_tensor`,
...).
"""

from ..au import AUS
from ..audio import AudioError
from ..data.corpus import SAMPLES_DIR, list_clips, read_align
from ..face import FaceError, LandmarkDetector, transform_points
from ..infer import (FaceCrop, Generator, InferError, crop_face, generate_video, load_generator,
                     load_speech, n_video_frames, paste_back, read_image, to_tensor, to_uint8)
from ..models.diffusion import DiffusionTalker
from ..video import VideoError, show_video
from .controls import (AU_NAMES, EDITOR_VIEW, ERRORS, AUEditor, GeneratorApp, au_editor,
                       generator_app, readable_error, uploaded_files)
from .plots import (face_regions, inference_figure, motion_figure, paste_mask, region_change,
                    sweep_figure)
from .samples import astronaut, sample_faces, sample_utterances
from .session import AU_SWEEPS, Session, au_sweeps, load_diffusion, render_with_aus

__all__ = [
    "AUS", "AU_NAMES", "AU_SWEEPS", "EDITOR_VIEW", "ERRORS", "AUEditor", "AudioError",
    "DiffusionTalker", "FaceCrop", "FaceError", "Generator", "GeneratorApp", "InferError",
    "LandmarkDetector", "SAMPLES_DIR", "Session", "VideoError", "astronaut", "au_editor",
    "au_sweeps", "crop_face", "face_regions", "generate_video", "generator_app",
    "inference_figure", "list_clips", "load_diffusion", "load_generator", "load_speech",
    "motion_figure", "n_video_frames", "paste_back", "paste_mask", "read_align", "read_image",
    "readable_error", "region_change", "render_with_aus", "sample_faces", "sample_utterances",
    "show_video", "sweep_figure", "to_tensor", "to_uint8", "transform_points", "uploaded_files",
]
