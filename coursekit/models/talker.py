"""The talking-face generator: identity image + speech -> video frames (paper Fig. 2).

For a clip of T video frames and its MFCC windows ``A_1 .. A_T``:

1. the identity encoder reads the identity face once: ``f_id`` and four U-Net skip maps;
2. the audio encoder reads every window: ``f_a,k``;
3. the (pre-trained) Audio2AU module reads the windows too: five AU features ``f_au,k``
   (and AU logits, which the AU loss can supervise);
4. each frame gets ``f_k = f_id + f_a,k + f_au,k`` (concatenation, paper 512 + 512 + 320);
5. the fusion network (TCSAN by default) mixes the ``f_k`` over time: ``f_t,k``;
6. the image decoder turns every ``f_t,k`` into a frame, with the identity's skip maps.

Shapes: identity ``(B, 3, S, S)`` in [-1, 1]; MFCC ``(B, T, 12, 28)``; frames
``(B, T, 3, S, S)`` in [-1, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from .audio2au import Audio2AU, FreezableAudio2AU
from .config import TalkerConfig
from .decoder import ImageDecoder
from .encoders import AudioEncoder, IdentityEncoder
from .tcsan import make_fusion


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


class Talker(FreezableAudio2AU, nn.Module):
    """Identity encoder + audio encoder + Audio2AU + fusion + U-Net image decoder.

    Args:
        cfg: sizes and choices (:meth:`TalkerConfig.paper`, :meth:`TalkerConfig.tiny`).

    ``forward(identity (B, 3, S, S), mfcc (B, T, 12, 28)) -> dict`` with

    * ``frames``: ``(B, T, 3, S, S)`` in [-1, 1];
    * ``au_logits``: ``(B, T, 5)`` from Audio2AU (``None`` when ``use_audio2au=False``);
    * ``fused``: ``(B, T, C)`` the fusion's output ``f_t`` (C = ``tcsan_channels``).
    """

    def __init__(self, cfg: TalkerConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or TalkerConfig.paper()
        self.identity_encoder = IdentityEncoder(cfg)
        self.audio_encoder = AudioEncoder(cfg)
        self.audio2au = Audio2AU(cfg.audio2au) if cfg.use_audio2au else None
        self.in_dims = {"id": cfg.id_dim, "audio": cfg.audio_dim, "au": cfg.au_dim}
        self.fusion = make_fusion(cfg, self.in_dims)
        self.decoder = ImageDecoder(cfg, self.fusion.out_dim)

    def features(self, identity: torch.Tensor, mfcc: torch.Tensor) -> dict:
        """Steps 1-4: ``f (B, T, fused_dim)``, ``skips`` (4 maps, ``(B, c, h, w)``), and
        ``au_logits (B, T, 5)`` or None."""
        b, t = mfcc.shape[:2]
        f_id, skips = self.identity_encoder(identity)  # (B, id_dim): once per clip
        parts = [f_id[:, None].expand(b, t, -1), self.audio_encoder(mfcc)]
        au_logits = None
        if self.audio2au is not None:
            au_feats, au_logits = self.audio2au.features_and_logits(mfcc)  # (B, T, 5, F)
            parts.append(au_feats.flatten(2))  # f_au = f_au10 + ... + f_au26: (B, T, 5F)
        return {"f": torch.cat(parts, dim=-1), "skips": skips, "au_logits": au_logits}

    def forward(self, identity: torch.Tensor, mfcc: torch.Tensor) -> dict:
        if identity.dim() != 4 or mfcc.dim() != 4 or identity.shape[0] != mfcc.shape[0]:
            raise ValueError(f"expected identity (B, 3, S, S) and mfcc (B, T, 12, 28), got "
                             f"{tuple(identity.shape)} and {tuple(mfcc.shape)}")
        b, t = mfcc.shape[:2]
        feats = self.features(identity, mfcc)
        fused = self.fusion(feats["f"])  # (B, T, C): temporal context across frames
        # the decoder works frame by frame; every frame of a clip shares its identity's skips
        skips = [s.repeat_interleave(t, dim=0) for s in feats["skips"]]
        frames = self.decoder(fused.reshape(b * t, -1), skips)
        return {"frames": frames.reshape(b, t, *frames.shape[1:]),
                "au_logits": feats["au_logits"], "fused": fused}
