"""The diffusion renderer: identity image + speech -> frames, by conditional denoising.

The newest version of the method replaces the image decoder with a diffusion model and splits
the identity face, guided by AUs, into an identity part and a speech part. For a clip of T
frames (shapes for a batch of B clips):

1. Audio2AU reads the MFCC windows ``(B, T, 12, 28)``: AU features ``(B, T, 5, F)`` and AU
   probabilities ``(B, T, 5)``; the audio encoder gives ``(B, T, audio_dim)``;
2. the mask generator (:mod:`.disentangle`) looks at the identity image and each frame's AU
   probabilities: ``A (B, T, 1, S, S)``; Id-face ``= A * I_id``, Aud-face ``= (1 - A) * I_id``;
3. the Aud-face encoder turns each Aud-face into ``(B, T, audface_dim)``;
4. TCSAN (or another fusion) mixes audio + AU + Aud-face features over time:
   the per-frame condition ``c (B, T, C)``;
5. the UNet (:mod:`.unet`) denoises each frame from ``[x_t, I_id, Id-face]`` (9 channels),
   the timestep and ``c``.

With ``motion="warp"`` (:class:`~coursekit.models.config.DiffusionConfig`) the UNet also reads
each frame's warped identity ``(B, T, 3, S, S)`` and mouth mask ``(B, T, 1, S, S)``
(:mod:`.warp_input`; 13 input channels), given to :meth:`forward` and :meth:`sample` as
``warped=`` and ``mouth_mask=``.

At inference the renderer sees ONLY the identity image and the audio: :meth:`sample` starts
every frame of a clip from one shared Gaussian noise image and runs DDIM (any number of
steps; deterministic with ``eta = 0``), all frames as one batch, so consecutive frames that
hear similar audio come out alike (temporal stability without a temporal UNet).
"""

from __future__ import annotations

import torch
from torch import nn

from .audio2au import Audio2AU, FreezableAudio2AU
from .config import DiffusionConfig, from_dict
from .disentangle import MaskGenerator, split_identity
from .encoders import AudioEncoder
from .schedule import NoiseSchedule
from .tcsan import make_fusion
from .unet import UNet
from .warp_input import warp_stack


class AudFaceEncoder(nn.Module):
    """``(N, 3, S, S) -> (N, dim)``: four stride-2 convs, global average pool, linear."""

    def __init__(self, dim: int, width: int = 32):
        super().__init__()
        layers, c = [], 3
        for k in range(4):
            layers += [nn.Conv2d(c, width * 2 ** min(k, 2), 3, stride=2, padding=1), nn.SiLU()]
            c = width * 2 ** min(k, 2)
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(c, dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(image).mean(dim=(2, 3)))


class DiffusionTalker(FreezableAudio2AU, nn.Module):
    """Audio2AU + audio encoder + attention-mask disentanglement + fusion + denoising UNet.

    Args:
        cfg: :meth:`DiffusionConfig.paper` or :meth:`DiffusionConfig.tiny`.

    Use :meth:`condition` then :meth:`denoise` for training, :meth:`sample` to generate.
    """

    def __init__(self, cfg: DiffusionConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or DiffusionConfig.paper()
        tc = cfg.talker
        self.audio_encoder = AudioEncoder(tc)
        self.audio2au = Audio2AU(tc.audio2au) if tc.use_audio2au else None
        self.mask_generator = MaskGenerator(cfg.mask_channels, tc.n_aus)
        self.audface_encoder = AudFaceEncoder(cfg.audface_dim, width=cfg.mask_channels[0])
        self.in_dims = {"audio": tc.audio_dim, "au": tc.au_dim, "au_probs": tc.n_aus,
                        "audface": cfg.audface_dim}
        self.fusion = make_fusion(tc, self.in_dims)
        self.unet = UNet(cfg.unet)
        self.null_cond = nn.Parameter(torch.zeros(cfg.unet.cond_dim))
        self.schedule = NoiseSchedule(cfg.timesteps, cfg.beta_schedule, cfg.prediction)

    @classmethod
    def from_state(cls, model_config: dict, state: dict) -> "DiffusionTalker":
        """Rebuild from a checkpoint's ``model_config`` (``asdict`` of the config) and weights
        (stored in fp16 or fp32; loaded as fp32), in eval mode."""
        model = cls(from_dict(DiffusionConfig, model_config))
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in state.items()})
        return model.eval()

    @property
    def image_size(self) -> int:
        return self.cfg.talker.image_size

    def condition(self, identity: torch.Tensor, mfcc: torch.Tensor,
                  aus: torch.Tensor | None = None, au_only: torch.Tensor | None = None) -> dict:
        """Steps 1-4 for a batch of clips.

        identity ``(B, 3, S, S)``, mfcc ``(B, T, 12, 28)`` -> dict with ``cond (B, T, C)``,
        ``mask (B, T, 1, S, S)``, ``id_face (B, T, 3, S, S)``, ``au_logits (B, T, 5)`` or None,
        ``au_probs (B, T, 5)`` (what drove the frame).

        **Driving by AUs.** With ``aus (B, T, 5)`` (AU intensities / 5, in [0, 1]) the clips
        flagged in ``au_only (B,)`` (all of them when None) are driven by those AUs alone: their
        audio and Audio2AU features are zeroed and the five values replace Audio2AU's
        probabilities as the explicit AU input (and as the mask generator's AUs). Training
        mixes such clips in (``au_drive``), so the mouth can be edited with AU sliders.
        """
        if identity.dim() != 4 or mfcc.dim() != 4 or identity.shape[0] != mfcc.shape[0]:
            raise ValueError(f"expected identity (B, 3, S, S) and mfcc (B, T, 12, 28), got "
                             f"{tuple(identity.shape)} and {tuple(mfcc.shape)}")
        b, t = mfcc.shape[:2]
        parts = [self.audio_encoder(mfcc)]
        au_logits = None
        if self.audio2au is not None:
            au_feats, au_logits = self.audio2au.features_and_logits(mfcc)
            parts.append(au_feats.flatten(2))
            au_probs = torch.sigmoid(au_logits)
        else:
            au_probs = mfcc.new_zeros(b, t, self.cfg.talker.n_aus)
        if aus is not None:
            if aus.shape != au_probs.shape:
                raise ValueError(f"aus must be {tuple(au_probs.shape)}, got {tuple(aus.shape)}")
            flag = (torch.ones(b, dtype=torch.bool) if au_only is None else au_only)
            flag = flag.to(mfcc.device)[:, None, None]
            parts = [torch.where(flag, torch.zeros_like(p), p) for p in parts]
            au_probs = torch.where(flag, aus.to(au_probs), au_probs)
        ids = identity[:, None].expand(b, t, *identity.shape[1:]).flatten(0, 1)
        mask = self.mask_generator(ids, au_probs.flatten(0, 1))  # (B*T, 1, S, S)
        id_face, aud_face = split_identity(ids, mask)
        parts += [au_probs, self.audface_encoder(aud_face).reshape(b, t, -1)]
        cond = self.fusion(torch.cat(parts, dim=-1))
        unflat = (b, t, *identity.shape[1:])
        return {"cond": cond, "mask": mask.reshape(b, t, 1, *identity.shape[2:]),
                "id_face": id_face.reshape(unflat), "au_logits": au_logits, "au_probs": au_probs}

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, identity: torch.Tensor,
                id_face: torch.Tensor, cond: torch.Tensor,
                warp: torch.Tensor | None = None) -> torch.Tensor:
        """The UNet's output (eps, v or x0 as configured) for frames ``(N, 3, S, S)``,
        timesteps ``(N,)``, identity and Id-face ``(N, 3, S, S)``, condition ``(N, C)`` and,
        with ``motion="warp"``, the warped identity and mouth mask stacked ``(N, 4, S, S)``."""
        images = [x_t, identity, id_face] + ([] if warp is None else [warp.to(x_t)])
        return self.unet(torch.cat(images, dim=1), t, cond)

    def forward(self, identity: torch.Tensor, mfcc: torch.Tensor, frames: torch.Tensor,
                per_frames: int | None = None, cond_drop: float = 0.0,
                aus: torch.Tensor | None = None, au_drive: float = 0.0, *,
                warped: torch.Tensor | None = None,
                mouth_mask: torch.Tensor | None = None) -> dict:
        """The training pass (DDPM): noise some real frames at random timesteps and predict.

        identity ``(B, 3, S, S)``, mfcc ``(B, T, 12, 28)``, real frames ``(B, T, 3, S, S)``.
        The condition is computed for all T frames (TCSAN needs the temporal context), the
        UNet runs on ``per_frames`` random frames of each clip (all when None): N frames.
        ``cond_drop`` replaces that share of conditions with the learned null condition
        (for classifier-free guidance). With ``aus (B, T, 5)`` (ground-truth intensities / 5),
        a share ``au_drive`` of the clips is driven by those AUs instead of the audio
        (:meth:`condition`). ``warped (B, T, 3, S, S)`` and ``mouth_mask (B, T, 1, S, S)``:
        required with ``motion="warp"``, refused otherwise. Random draws use torch's global RNG.

        Returns ``pred`` and ``target`` ``(N, 3, S, S)``, ``t (N,)``, ``mask (B, T, 1, S, S)``,
        ``au_logits (B, T, 5)`` or None, ``index`` ``(N,)`` (flat ``b * T + k``).
        """
        b, t = mfcc.shape[:2]
        extra = warp_stack(self.cfg.motion, warped, mouth_mask, (b, t), self.image_size,
                           "DiffusionTalker")
        au_only = (torch.rand(b) < au_drive) if aus is not None else None
        c = self.condition(identity, mfcc, aus, au_only)
        index = torch.arange(b * t, device=frames.device)
        if per_frames and per_frames < t:
            pick = torch.rand(b, t).argsort(dim=1)[:, :per_frames].to(frames.device)
            index = (pick + t * torch.arange(b, device=frames.device)[:, None]).flatten()
        x0 = frames.flatten(0, 1)[index]
        ids = identity.repeat_interleave(t, dim=0)[index]
        id_face = c["id_face"].flatten(0, 1)[index]
        cond = c["cond"].flatten(0, 1)[index]
        drop = (torch.rand(len(index)) < cond_drop).to(cond.device)[:, None]
        cond = torch.where(drop, self.null_cond.to(cond)[None], cond)
        steps = torch.randint(0, self.schedule.timesteps, (len(index),)).to(frames.device)
        noise = torch.randn(x0.shape).to(x0)
        x_t = self.schedule.add_noise(x0, noise, steps)
        warp = None if extra is None else extra.flatten(0, 1)[index]
        pred = self.denoise(x_t, steps, ids, id_face, cond, warp)
        return {"pred": pred, "target": self.schedule.target(x0, noise, steps), "t": steps,
                "mask": c["mask"], "au_logits": c["au_logits"], "index": index}

    @torch.no_grad()
    def sample(self, identity: torch.Tensor, mfcc: torch.Tensor, steps: int | None = None, *,
               eta: float = 0.0, guidance: float = 1.0, seed: int | None = 0,
               aus: torch.Tensor | None = None, chunk: int = 256, progress: bool = False,
               warped: torch.Tensor | None = None,
               mouth_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Generate a clip: identity ``(B, 3, S, S)``, MFCC ``(B, T, 12, 28)`` ->
        ``(B, T, 3, S, S)`` in [-1, 1].

        Args:
            steps: DDIM steps (default ``cfg.sample_steps``).
            eta: 0 for deterministic DDIM, 1 for DDPM-like noise.
            guidance: classifier-free guidance scale; 1 uses the conditional model only,
                > 1 also runs the model with the learned null condition and extrapolates.
            seed: seeds the shared initial noise (and eta noise); None uses the global RNG.
            aus: ``(B, T, 5)`` AU intensities / 5 in [0, 1]: drive the mouth by these AUs
                instead of the audio (the MFCC then only sets T; zeros will do).
            chunk: frames per UNet call (memory).
            warped, mouth_mask: ``(B, T, 3, S, S)`` and ``(B, T, 1, S, S)``, the frames'
                warped identity and mouth mask (:func:`coursekit.data.warped.warp_tensors` of
                the motion model's landmarks): required with ``motion="warp"``.
        """
        from tqdm.auto import tqdm

        was_training = self.training
        self.eval()
        b, t = mfcc.shape[:2]
        s = self.image_size
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        extra = warp_stack(self.cfg.motion, warped, mouth_mask, (b, t), s, "DiffusionTalker")
        warp = None if extra is None else extra.flatten(0, 1)
        c = self.condition(identity, mfcc, aus)
        cond = c["cond"].flatten(0, 1)
        ids = identity[:, None].expand(b, t, *identity.shape[1:]).flatten(0, 1)
        id_face = c["id_face"].flatten(0, 1)
        x = torch.randn((b, 1, 3, s, s), generator=gen).to(identity)
        x = x.expand(b, t, 3, s, s).flatten(0, 1).contiguous()  # one noise image per clip
        sched = self.schedule
        ts = sched.ddim_timesteps(steps or self.cfg.sample_steps, self.cfg.timestep_spacing).tolist()
        for k, step_t in enumerate(tqdm(ts, desc="DDIM", disable=not progress, leave=False)):
            out = torch.cat([self._guided(x[i:i + chunk], step_t, ids[i:i + chunk],
                                          id_face[i:i + chunk], cond[i:i + chunk], guidance,
                                          None if warp is None else warp[i:i + chunk])
                             for i in range(0, len(x), chunk)])
            t_prev = ts[k + 1] if k + 1 < len(ts) else -1
            noise = torch.randn(x.shape, generator=gen).to(x) if eta > 0 else None
            x = sched.ddim_step(out.float(), step_t, t_prev, x.float(), eta=eta, noise=noise).to(x)
        self.train(was_training)
        return x.clamp(-1, 1).reshape(b, t, 3, s, s)

    def _guided(self, x, step_t, ids, id_face, cond, guidance, warp=None):
        tt = torch.full((len(x),), step_t, device=x.device, dtype=torch.long)
        out = self.denoise(x, tt, ids, id_face, cond, warp)
        if guidance != 1.0:
            null = self.null_cond.to(cond)[None].expand_as(cond)
            out_null = self.denoise(x, tt, ids, id_face, null, warp)
            out = out_null + guidance * (out - out_null)
        return out
