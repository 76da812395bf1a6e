"""Hyper-parameters of the networks, as plain dataclasses.

Two presets of :class:`TalkerConfig` differ **only in numbers**, never in structure:

* :meth:`TalkerConfig.paper` -- the sizes of the paper (112x112 faces, 512-d identity and
  audio features, five 64-d AU features, so every frame is a 512 + 512 + 320 = 1344-d vector
  fed to a 4-level TCSAN);
* :meth:`TalkerConfig.tiny` -- the same architecture shrunk for CPU work (64x64 faces, 96-d
  features, 3 levels; 1.5 M parameters): a training step on a batch of 4 clips of 16 frames
  takes a second or two on 2 CPU cores, most of it in the decoder's full-size layers.

Every class, loss and notebook reads its sizes from here, so a new experiment is one config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from typing import ClassVar

from ..presets import Presets

FUSIONS = ("tcsan", "gru", "tcn", "mhatt_tcn", "coatt_tcn")
"""Names accepted by ``TalkerConfig.fusion`` (the rows of the paper's Table 3)."""

N_MFCC = 12
"""MFCC coefficients per window (rows of an ``(12, 28)`` window)."""

WINDOW_STEPS = 28
"""MFCC steps per window (10 ms each: a 280 ms window centred on the video frame)."""

MOTIONS = ("none", "warp")
"""Values of ``motion`` (:class:`TalkerConfig`, :class:`DiffusionConfig`): ``"none"``, the
paper's renderer (identity image and speech only); ``"warp"``, each frame also gets the
identity warped to the frame's wanted landmarks and its mouth mask (:mod:`coursekit.data.warped`)."""

WARP_CHANNELS = 4
"""Input channels that ``motion="warp"`` adds: the warped identity (3) and the mouth mask (1)."""

TEMPORALS = ("none", "flow")
"""Values of ``TalkerConfig.temporal``: ``"none"``, every frame decoded on its own; ``"flow"``
(Face2Vid), the decoder also reads the frame before, moved to the current one by the optical
flow of the warped identity (:mod:`coursekit.models.temporal`)."""

DECODER_ATTN_LEVELS = (1, 2, 3, 4)
"""Levels of ``TalkerConfig.attn_levels``: level ``l`` is the decoder's ``S / 2**l`` map."""


def check_motion(motion: str) -> int:
    """The extra input channels of ``motion`` (0 or :data:`WARP_CHANNELS`); a ValueError
    for an unknown value."""
    if motion not in MOTIONS:
        raise ValueError(f"motion must be one of {MOTIONS}, got {motion!r}")
    return WARP_CHANNELS if motion == "warp" else 0


@dataclass(frozen=True)
class Audio2AUConfig:
    """One audio-to-AU network (the paper pre-trains five, one per AU).

    conv_channels: output channels of the conv blocks; block 1 convolves over frequency,
        block 2 over time, and so on alternately.
    lstm_hidden, lstm_layers, bidirectional: the LSTM that runs over the clip's frames.
    fc: widths of the hidden fully connected layers; a last layer to 1 logit follows.
        ``fc[-1]`` is the per-AU feature size handed to the talker (paper: 64).
    dropout: between the LSTM layers and after the hidden FC layers.
    """

    conv_channels: tuple[int, ...] = (32, 64)
    lstm_hidden: int = 128
    lstm_layers: int = 2
    fc: tuple[int, ...] = (128, 64)
    bidirectional: bool = True
    dropout: float = 0.1

    @property
    def feat_dim(self) -> int:
        """Size of the penultimate FC output (the AU feature), ``fc[-1]``."""
        return self.fc[-1]


@dataclass(frozen=True)
class AUClassifierConfig(Presets):
    """The AU classifier that judges generated frames (lower half of the face only).

    image_size: side S of the full face; the classifier sees ``(3, S/2, S)``.
    channels: the 4 conv layers (a 2x2 max-pool after every 2).
    fc: the 2 hidden FC widths; a third FC gives ``n_aus`` logits.

    ``paper()``: these defaults; ``tiny()``: 64 px, thin convs (:mod:`coursekit.presets`).
    """

    TINY: ClassVar[dict] = dict(image_size=64, channels=(16, 32, 48, 64), fc=(96, 32))

    image_size: int = 112
    channels: tuple[int, int, int, int] = (32, 64, 128, 128)
    fc: tuple[int, int] = (256, 64)
    n_aus: int = 5
    dropout: float = 0.1


@dataclass(frozen=True)
class TalkerConfig:
    """The whole generator: encoders, Audio2AU, temporal fusion and image decoder.

    image_size: S, frames are ``(3, S, S)``; must be divisible by 16.
    id_dim, audio_dim: identity and audio feature sizes (paper: 512 each).
    au_feat_dim: per-AU feature size (paper: 64); the AU stream is ``n_aus * au_feat_dim``.
    enc_channels: the identity encoder's 4 stride-2 convs (also the U-Net skip widths).
    dec_channels: the decoder's 4 upsampling transposed convs (two stride-1 ones follow).
    tcsan_channels, tcsan_levels: width and depth of the temporal fusion network.
    kernel: TCN kernel size k (odd); heads: attention heads h.
    attn_token_dim: TCSAN's element attention cuts each frame's ``tcsan_channels`` into tokens
        of this size (must divide it; ``heads`` must divide it).
    audio_channels: the audio encoder's 5 conv widths.
    fusion: one of :data:`FUSIONS`.
    use_audio2au: with False the AU stream is left out (the paper's ablation).
    audio2au: the per-AU network; its ``fc[-1]`` is forced to ``au_feat_dim``.
    motion: one of :data:`MOTIONS`. ``"warp"``: the identity encoder reads, per frame, the
        identity stacked with that frame's warped identity and mouth mask (3 + 4 channels),
        so ``f_id`` and the U-Net skips follow the wanted mouth.
    temporal: one of :data:`TEMPORALS` (``"flow"`` needs ``motion="warp"``: the landmarks
        drive the flow). attn_levels: spatial self-attention in the image decoder on the maps
        of these :data:`DECODER_ATTN_LEVELS` (Face2Vid; () = none).
    """

    image_size: int = 112
    id_dim: int = 512
    audio_dim: int = 512
    au_feat_dim: int = 64
    n_aus: int = 5
    enc_channels: tuple[int, int, int, int] = (64, 128, 256, 512)
    dec_channels: tuple[int, int, int, int] = (512, 256, 128, 64)
    audio_channels: tuple[int, ...] = (64, 128, 256, 256, 512)
    tcsan_channels: int = 512
    tcsan_levels: int = 4
    kernel: int = 3
    heads: int = 4
    attn_token_dim: int = 16
    fusion: str = "tcsan"
    use_audio2au: bool = True
    dropout: float = 0.1
    audio2au: Audio2AUConfig = field(default_factory=Audio2AUConfig)
    motion: str = "none"
    temporal: str = "none"
    attn_levels: tuple[int, ...] = ()

    def __post_init__(self):
        check_motion(self.motion)
        if self.temporal not in TEMPORALS:
            raise ValueError(f"temporal must be one of {TEMPORALS}, got {self.temporal!r}")
        if self.temporal == "flow" and self.motion != "warp":
            raise ValueError("temporal='flow' needs motion='warp' (the warped identity's flow)")
        if not set(self.attn_levels) <= set(DECODER_ATTN_LEVELS):
            raise ValueError(f"attn_levels must be among {DECODER_ATTN_LEVELS}, "
                             f"got {self.attn_levels}")
        if self.image_size % 16:
            raise ValueError(f"image_size must be divisible by 16, got {self.image_size}")
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd (symmetric, non-causal), got {self.kernel}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.audio2au.fc[-1] != self.au_feat_dim:
            # the AU feature is the penultimate FC output of Audio2AU: keep them in step
            fc = (*self.audio2au.fc[:-1], self.au_feat_dim)
            object.__setattr__(self, "audio2au", replace(self.audio2au, fc=fc))

    @property
    def identity_channels(self) -> int:
        """Input channels of the identity encoder: 3, or 7 with ``motion="warp"``."""
        return 3 + check_motion(self.motion)

    @property
    def au_dim(self) -> int:
        """Width of the AU stream per frame, ``n_aus * au_feat_dim`` (0 without Audio2AU)."""
        return self.n_aus * self.au_feat_dim if self.use_audio2au else 0

    @property
    def fused_dim(self) -> int:
        """Width of ``f_k = f_id + f_a,k + f_au,k`` (concatenated), paper 1344."""
        return self.id_dim + self.audio_dim + self.au_dim

    @classmethod
    def paper(cls, **overrides) -> "TalkerConfig":
        """The paper's sizes: 112x112 faces, 512 + 512 + 5 x 64 = 1344 fused, 4 TCSAN levels.

        Parameter count of ``Talker(TalkerConfig.paper())`` (measured with
        :func:`coursekit.models.count_parameters`): **53,472,360** in total -- identity
        encoder 15,602,112, audio encoder 5,550,016, Audio2AU (five nets) 5,501,605, TCSAN
        8,272,640, image decoder 18,545,987. The two FC layers around the 7x7x512 bottleneck
        (encoder and decoder) hold 25.7 M of them.
        """
        return cls(**overrides)

    @classmethod
    def tiny(cls, **overrides) -> "TalkerConfig":
        """Same structure, small numbers: 64x64 faces, 96-d features, 3 TCSAN levels.

        1,475,040 parameters (Audio2AU 348,205); fused width 96 + 96 + 5 x 16 = 272.
        """
        base = dict(
            image_size=64, id_dim=96, audio_dim=96, au_feat_dim=16,
            enc_channels=(16, 32, 64, 96), dec_channels=(96, 64, 32, 16),
            audio_channels=(16, 32, 32, 64, 64), tcsan_channels=96, tcsan_levels=3,
            audio2au=Audio2AUConfig(conv_channels=(8, 16), lstm_hidden=32, fc=(32, 16)),
        )
        base.update(overrides)
        return cls(**base)


def from_dict(cls, values: dict):
    """Rebuild a config dataclass from ``dataclasses.asdict`` output (as stored in a
    ``weights_only`` checkpoint or a JSON file): lists become tuples again, nested configs
    become dataclasses. Unknown field names are an error (a typo must not pass silently)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}; known: {sorted(fields)}")
    kwargs = {}
    for name, value in values.items():
        default = getattr(cls(), name) if name in fields else None
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            value = from_dict(type(default), value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


RENDERERS = ("decoder", "diffusion")
"""How frames are made: the paper's U-Net image decoder, or the conditional diffusion renderer."""


@dataclass(frozen=True)
class UNetConfig:
    """The one denoising UNet of the diffusion renderer; variants are chosen here.

    in_channels: image channels stacked at the input (noisy frame + identity + Id-face = 9;
        13 with the warped identity and mouth mask of ``motion="warp"``, set by the renderer).
    channels: width at each resolution level (each level after the first halves the size).
    blocks: residual blocks per level on the way down (one more on the way up).
    attn_levels: levels (0 = full size) with spatial self-attention and cross-attention.
    heads: attention heads.
    patch: pixel-unshuffle factor at the input (1 = plain pixel UNet; 2 works on 2x2 patches,
        4x less compute for small CPU configs).
    cond_dim: width of the per-frame condition vector (set by the renderer: the fusion output).
    cond_mode: how the condition reaches the network: ``"adagn"`` (adaptive group norm: a
        linear map of the whole vector scales and shifts every residual block), ``"xattn"``
        (cross-attention from image tokens to condition tokens) or ``"both"``.
    cond_token_dim: the condition vector is cut into tokens of this size for cross-attention.
    time_dim: width of the timestep embedding (and of the AdaGN embedding).
    """

    in_channels: int = 9
    out_channels: int = 3
    channels: tuple[int, ...] = (128, 256, 256, 512)
    blocks: int = 2
    attn_levels: tuple[int, ...] = (2, 3)
    heads: int = 4
    patch: int = 1
    cond_dim: int = 512             # set by the renderer (the fusion width)
    cond_mode: str = "both"
    cond_token_dim: int = 32
    time_dim: int = 512
    groups: int = 32
    dropout: float = 0.0

    def __post_init__(self):
        if self.cond_mode not in ("adagn", "xattn", "both"):
            raise ValueError(f"cond_mode must be 'adagn', 'xattn' or 'both', got {self.cond_mode!r}")
        if self.cond_dim % self.cond_token_dim:
            raise ValueError(f"cond_token_dim {self.cond_token_dim} must divide cond_dim {self.cond_dim}")


@dataclass(frozen=True)
class DiffusionConfig:
    """The diffusion renderer (the newest version of the method), paper and tiny sizes.

    talker: sizes of the parts shared with the image-decoder model (image size, audio encoder,
        Audio2AU, fusion network); its identity encoder and decoder are not used.
    audface_dim: width of the Aud-face encoding that joins audio and AU features per frame.
    mask_channels: the attention-mask generator's conv widths (it works at 1/4 resolution).
    unet: the denoiser (its ``cond_dim`` is set to the fusion output width).
    timesteps, beta_schedule, prediction: the noise schedule (:mod:`.schedule`).
    sample_steps: default DDIM steps at inference.
    timestep_spacing: which timesteps DDIM visits (:meth:`.schedule.NoiseSchedule.ddim_timesteps`);
        ``"trailing"`` starts every run, however short, at the last timestep.
    motion: one of :data:`MOTIONS`. ``"warp"``: the UNet also reads each frame's warped
        identity and mouth mask (``unet.in_channels`` 9 + 4). The nested ``talker.motion``
        follows it ("warp" in either turns it on).
    """

    talker: TalkerConfig = field(default_factory=TalkerConfig.paper)
    audface_dim: int = 128
    mask_channels: tuple[int, ...] = (64, 128)
    unet: UNetConfig = field(default_factory=UNetConfig)
    timesteps: int = 1000
    beta_schedule: str = "cosine"
    prediction: str = "sample"
    sample_steps: int = 25
    timestep_spacing: str = "trailing"
    motion: str = "none"

    def __post_init__(self):
        check_motion(self.motion)
        if self.motion == "none" and self.talker.motion != "none":
            object.__setattr__(self, "motion", self.talker.motion)
        if self.talker.motion != self.motion:
            object.__setattr__(self, "talker", replace(self.talker, motion=self.motion))
        unet = replace(self.unet, cond_dim=self.talker.tcsan_channels,
                       in_channels=9 + check_motion(self.motion))
        if unet != self.unet:
            object.__setattr__(self, "unet", unet)

    @classmethod
    def paper(cls, **overrides) -> "DiffusionConfig":
        """112 px pixel-space renderer; TCSAN over audio 512 + AU 320 + Aud-face 128 per frame."""
        return cls(**overrides)

    @classmethod
    def tiny(cls, **overrides) -> "DiffusionConfig":
        """64 px, 2x2 patches, three levels (32, 16, 8 px): trains on a laptop CPU."""
        base = dict(talker=TalkerConfig.tiny(), audface_dim=32, mask_channels=(16, 32),
                    unet=UNetConfig(channels=(32, 64, 96), blocks=1, attn_levels=(2,), heads=4,
                                  patch=2, cond_token_dim=16, time_dim=96, groups=16))
        base.update(overrides)
        return cls(**base)
