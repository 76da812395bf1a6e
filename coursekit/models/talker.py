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

With ``motion="warp"`` (:class:`~coursekit.models.config.TalkerConfig`) step 1 runs per frame
on the identity stacked with the frame's warped identity ``(B, T, 3, S, S)`` and mouth mask
``(B, T, 1, S, S)`` (:mod:`.warp_input`): ``f_id`` and the skips then carry the wanted mouth,
and the decoder paints a change of the warped identity (its output is added to
``atanh(warped)`` before the tanh, as the mouth painter's is; it starts at zero, so an
untrained talker shows the warped face): what the warp cannot make (cavity, teeth, shading).

With ``temporal="flow"`` (Face2Vid, :mod:`.temporal`) the decoder also reads each frame's
predecessor moved to it by the warped identity's optical flow: ``previous (B, T, 3, S, S)``
given (training, teacher forcing) decodes all frames at once; without it the frames are
decoded one after the other from the generated ones (``flow (B, T, 2, S, S)``, computed from
``warped`` when not given).
"""

from __future__ import annotations

import torch
from torch import nn

from .audio2au import Audio2AU, FreezableAudio2AU
from .config import TalkerConfig
from .decoder import ImageDecoder
from .encoders import AudioEncoder, IdentityEncoder
from .tcsan import make_fusion
from .temporal import (PreviousEncoder, conditioning_flow, decode_autoregressive,
                       decode_teacher_forced)
from .warp_input import warp_base, warp_stack


FC_INIT_SCALE = 0.1
"""Initial scale of the decoder's FC weights against PyTorch's default (:meth:`Talker.balance_init`)."""


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


class Talker(FreezableAudio2AU, nn.Module):
    """Identity encoder + audio encoder + Audio2AU + fusion + U-Net image decoder.

    Args:
        cfg: sizes and choices (:meth:`TalkerConfig.paper`, :meth:`TalkerConfig.tiny`).

    ``forward(identity (B, 3, S, S), mfcc (B, T, 12, 28), *, warped=None, mouth_mask=None)
    -> dict`` (``warped (B, T, 3, S, S)``, ``mouth_mask (B, T, 1, S, S)``: required with
    ``motion="warp"``, refused otherwise; with ``temporal="flow"`` also ``previous (B, T, 3,
    S, S)`` for teacher forcing or ``flow (B, T, 2, S, S)``, see the module docstring) with

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
        if cfg.temporal == "flow":
            self.previous_encoder = PreviousEncoder(cfg)
        self.balance_init()

    def balance_init(self, fc_scale: float = FC_INIT_SCALE) -> None:
        """Start with the identity as loud as the speech at the decoder's input.

        With PyTorch's default initialisation every identity-encoder conv shrinks its input
        (about 0.4x with the ReLU), so the U-Net skips start 7-20 times weaker than the
        decoder's FC map of the fused feature, which the pre-trained Audio2AU features
        dominate (loudest in near-silence, where Audio2AU is surest: AU stream rms 2.5
        against 1.6 in speech and 0.02 for ``f_id``). The decoder then paints from the speech
        path first, and in near-silent frames its pre-activation reaches tens: tanh
        saturates, the L1 gradient vanishes there and a saturated patch stays (on the mouth
        with the identity loss, which holds the upper half; on the forehead without it).
        He-initialised identity convs (ReLU gain) keep the skips at the image's scale, and
        the decoder's FC weights start ``fc_scale`` times smaller, so the copy of the
        identity is learnt first and the speech path grows from there. With
        ``motion="warp"`` the decoder's last layer starts at zero (the frame is the warped
        identity until it learns a change). Loaded weights replace all of this."""
        for block in self.identity_encoder.convs:
            nn.init.kaiming_normal_(block[0].weight, nonlinearity="relu")
            nn.init.zeros_(block[0].bias)
        with torch.no_grad():
            self.decoder.fc[0].weight.mul_(fc_scale)
        if self.cfg.motion == "warp":
            nn.init.zeros_(self.decoder.out.weight)
            nn.init.zeros_(self.decoder.out.bias)

    def features(self, identity: torch.Tensor, mfcc: torch.Tensor, *,
                 warped: torch.Tensor | None = None,
                 mouth_mask: torch.Tensor | None = None) -> dict:
        """Steps 1-4: ``f (B, T, fused_dim)``, ``skips`` (4 maps, ``(B, c, h, w)``: once per
        clip; ``(B * T, c, h, w)``, one per frame, with ``motion="warp"``), and
        ``au_logits (B, T, 5)`` or None."""
        b, t = mfcc.shape[:2]
        extra = warp_stack(self.cfg.motion, warped, mouth_mask, (b, t), identity.shape[-1],
                           "Talker")
        if extra is None:
            f_id, skips = self.identity_encoder(identity)  # (B, id_dim): once per clip
            f_id = f_id[:, None].expand(b, t, -1)
        else:  # per frame: the identity with the frame's warped face and mouth mask
            ids = identity[:, None].expand(b, t, *identity.shape[1:])
            f_id, skips = self.identity_encoder(torch.cat([ids, extra], dim=2).flatten(0, 1))
            f_id = f_id.reshape(b, t, -1)
        parts = [f_id, self.audio_encoder(mfcc)]
        au_logits = None
        if self.audio2au is not None:
            au_feats, au_logits = self.audio2au.features_and_logits(mfcc)  # (B, T, 5, F)
            parts.append(au_feats.flatten(2))  # f_au = f_au10 + ... + f_au26: (B, T, 5F)
        return {"f": torch.cat(parts, dim=-1), "skips": skips, "au_logits": au_logits}

    def forward(self, identity: torch.Tensor, mfcc: torch.Tensor, *,
                warped: torch.Tensor | None = None,
                mouth_mask: torch.Tensor | None = None,
                previous: torch.Tensor | None = None,
                flow: torch.Tensor | None = None) -> dict:
        if identity.dim() != 4 or mfcc.dim() != 4 or identity.shape[0] != mfcc.shape[0]:
            raise ValueError(f"expected identity (B, 3, S, S) and mfcc (B, T, 12, 28), got "
                             f"{tuple(identity.shape)} and {tuple(mfcc.shape)}")
        b, t = mfcc.shape[:2]
        feats = self.features(identity, mfcc, warped=warped, mouth_mask=mouth_mask)
        fused = self.fusion(feats["f"])  # (B, T, C): temporal context across frames
        # the decoder works frame by frame; every frame of a clip shares its identity's skips
        # (with motion="warp" each frame has its own)
        skips = [s if len(s) == b * t else s.repeat_interleave(t, dim=0) for s in feats["skips"]]
        base = None if warped is None else warp_base(warped.flatten(0, 1))
        if self.cfg.temporal == "none":
            if previous is not None or flow is not None:
                raise ValueError("Talker: previous / flow given to a temporal='none' model")
            frames = self.decoder(fused.reshape(b * t, -1), skips, base)
        elif previous is not None:  # teacher forcing: the real predecessors, flow-warped
            frames = decode_teacher_forced(self.decoder, self.previous_encoder,
                                           fused.reshape(b * t, -1), skips, base,
                                           previous.flatten(0, 1))
        else:  # autoregressive: each frame reads the one generated before it
            flow = conditioning_flow(warped) if flow is None else flow
            frames = decode_autoregressive(self.decoder, self.previous_encoder, fused, skips,
                                           base, flow, warped[:, 0])
        return {"frames": frames.reshape(b, t, *frames.shape[1:]),
                "au_logits": feats["au_logits"], "fused": fused}
