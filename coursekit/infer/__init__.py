"""Inference: any face photo and any voice recording -> a talking-face video.

``coursekit generate [--checkpoint CKPT] --face IMAGE --audio AUDIO --out OUT.mp4`` runs
:func:`generate_video` (without a checkpoint: the shipped default generator of
:func:`coursekit.assets.default_generator`, the **warp generator** of :mod:`.warp`, which
moves the photo's own pixels and paints only the mouth interior; ``--checkpoint warp``,
``diffusion`` or ``decoder`` name the shipped ones), which does what preprocessing and
training did, on new inputs:

1. **audio** (:func:`coursekit.audio.load_audio`): any rate, mono or stereo, wav/flac/mp3 or
   the sound of a video file. The video gets ``n_frames = ceil(duration * 25)`` frames, so it
   covers the whole recording; each frame gets its 280 ms MFCC window
   (:func:`coursekit.audio.mfcc_windows`), normalised with the *training* statistics stored
   in the checkpoint (``mfcc_mean``, ``mfcc_std``).
2. **face** (:func:`crop_face`): dlib finds the largest face and its 68 landmarks, and the
   photo is cropped with **the same template alignment as preprocessing**
   (:func:`coursekit.face.alignment_transforms` on the rigid eye and nose points, then
   :func:`coursekit.face.warp_faces`), so the crop looks like the training crops. Where the
   face is so large that the crop shrinks it below half size, the photo is first reduced
   with area averaging (a bilinear warp alone would alias); the alignment is unchanged.
3. **frames** (:class:`Generator`): the model of the checkpoint's ``kind`` (``"talker"``, the
   paper's image decoder, or ``"diffusion"``) turns the identity crop and the MFCC windows
   into ``(T, 3, S, S)`` frames. Renderers are looked up in :data:`RENDERERS`, so another
   one is added with one line. The :class:`~.warp.WarpGenerator` (a ``warp_generator``
   JSON file naming its parts) instead turns the audio into landmark motion and warps the
   crop, or with paste-back the whole photo at its native resolution
   (:mod:`.warp_frames`); silence (:func:`~.warp.speech_activity`) leaves the photo still.
4. **video** (:func:`coursekit.video.write_video`): H.264 at 25 fps with the *original*
   audio (its own sample rate, mixed to mono) muxed as AAC, so the sound lasts exactly as
   long as the input recording. Without paste-back the frames are the face crops, enlarged
   to :data:`VIEW_SIZE` pixels (bicubic) when smaller: a 64 px crop is too small to watch.
   With paste-back (:func:`paste_back`) every crop is warped back into the photo under a
   feathered mask of the lower face, and the frames have the photo's size.

Text (:mod:`.text`): ``--text "..."`` speaks a sentence with espeak-ng (:func:`speak`, exact
phoneme timings) and makes the video from that speech; ``--text`` with ``--audio`` aligns the
transcript to the recording (:func:`align`: espeak's speech and the recording matched by DTW
on MFCCs) and keeps the recording's sound; :func:`text_video` does either.

Shapes: photo ``(H, W, 3)`` RGB uint8; crops ``(S, S, 3)`` uint8; tensors ``(3, S, S)`` in
[-1, 1]; MFCC windows ``(T, 12, 28)``; transforms ``(2, 3)`` image -> crop.
"""

from .faces import (CHIN, LOWER_FACE, MAX_PHOTO_SIDE, FaceCrop, crop_face, lower_face_polygon,
                    paste_back, read_image, to_tensor, to_uint8)
from .generator import (CHUNK, RENDERER_NAMES, RENDERERS, Generator, InferError,
                        decode_in_chunks, default_checkpoint, generator_path, load_generator)
from .run import VIEW_SIZE, generate_video, load_speech, n_video_frames
from .text import (TextError, align, align_speech, dtw, landmark_driven, normalize_text, speak,
                   text_video, warp_times, write_timings)
from .warp import WarpConfig, WarpGenerator, load_warp_generator, speech_activity

__all__ = [
    "CHIN", "CHUNK", "LOWER_FACE", "MAX_PHOTO_SIDE", "RENDERERS", "RENDERER_NAMES", "VIEW_SIZE",
    "FaceCrop", "Generator", "InferError", "TextError", "WarpConfig", "WarpGenerator", "align",
    "align_speech", "crop_face", "decode_in_chunks", "default_checkpoint", "dtw",
    "generate_video", "generator_path", "landmark_driven", "load_generator", "load_speech",
    "load_warp_generator",
    "lower_face_polygon", "n_video_frames", "normalize_text", "paste_back", "read_image", "speak",
    "speech_activity", "text_video", "to_tensor", "to_uint8", "warp_times", "write_timings",
]
