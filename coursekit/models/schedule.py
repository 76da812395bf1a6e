"""The diffusion noise schedule, the DDPM and DDIM steps (the renderer's sampler math).

Forward process (Ho et al., 2020): with ``alpha_bar_t = prod_{s<=t} (1 - beta_s)``,

    x_t = sqrt(alpha_bar_t) * x_0 + sqrt(1 - alpha_bar_t) * eps,     eps ~ N(0, I).

The network predicts one of three targets (``prediction``):

* ``"epsilon"``: the noise ``eps``;
* ``"v_prediction"``: the velocity ``v = sqrt(alpha_bar) * eps - sqrt(1 - alpha_bar) * x_0``
  (Salimans & Ho, 2022), well behaved at both ends of the schedule;
* ``"sample"``: ``x_0`` itself.

Whatever it predicts, :meth:`NoiseSchedule.split` recovers both ``x_0`` and ``eps``, and the
samplers are written on those two:

* DDPM ancestral step (``t -> t-1``): the posterior mean of ``q(x_{t-1} | x_t, x_0)`` plus
  noise with the posterior variance ``beta~_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t``;
* DDIM step (Song et al., 2021) from ``t`` to any earlier ``t'``:
  ``x_t' = sqrt(alpha_bar_t') x_0 + sqrt(1 - alpha_bar_t' - sigma^2) eps + sigma z`` with
  ``sigma = eta sqrt(beta~)``; ``eta = 0`` is deterministic, so a clip sampled from one shared
  initial noise stays temporally stable.

The conventions (beta schedules, ``"leading"`` timestep spacing, ``alpha_bar = 1`` after the
last step, clipping of ``x_0``) are those of the ``diffusers`` library, and the tests check
every formula against its ``DDPMScheduler`` and ``DDIMScheduler`` on the same inputs.
"""

from __future__ import annotations

import math

import numpy as np
import torch

BETA_SCHEDULES = ("linear", "scaled_linear", "cosine")
PREDICTIONS = ("epsilon", "v_prediction", "sample")


def make_betas(timesteps: int = 1000, schedule: str = "cosine", beta_start: float = 1e-4,
               beta_end: float = 0.02) -> torch.Tensor:
    """``(timesteps,)`` float32 betas.

    ``"linear"``: evenly spaced from ``beta_start`` to ``beta_end`` (DDPM);
    ``"scaled_linear"``: evenly spaced in sqrt (Stable Diffusion);
    ``"cosine"``: ``alpha_bar(t) = cos^2((t/T + 0.008) / 1.008 * pi/2)`` with betas capped at
    0.999 (Nichol & Dhariwal, 2021; diffusers' ``"squaredcos_cap_v2"``).
    """
    if schedule == "linear":
        return torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float32)
    if schedule == "scaled_linear":
        return torch.linspace(beta_start ** 0.5, beta_end ** 0.5, timesteps, dtype=torch.float32) ** 2
    if schedule == "cosine":
        def alpha_bar(u):
            return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

        return torch.tensor([min(1 - alpha_bar((i + 1) / timesteps) / alpha_bar(i / timesteps), 0.999)
                             for i in range(timesteps)], dtype=torch.float32)
    raise ValueError(f"beta schedule must be one of {BETA_SCHEDULES}, got {schedule!r}")


def _at(values: torch.Tensor, t, like: torch.Tensor) -> torch.Tensor:
    """``values[t]`` for a scalar or ``(N,)`` timestep, shaped to broadcast over ``like``."""
    t = torch.as_tensor(t, device=values.device, dtype=torch.long)
    v = values[t].to(like.device, like.dtype)
    return v.reshape(-1, *([1] * (like.dim() - 1))) if v.dim() else v


class NoiseSchedule:
    """Betas and the derived quantities, with the forward process and the two samplers.

    Args:
        timesteps: number of training timesteps T (1000 in DDPM and in the reference code).
        beta_schedule: one of :data:`BETA_SCHEDULES`.
        prediction: the network's target, one of :data:`PREDICTIONS`.
        clip_sample: clamp the ``x_0`` estimate to ``[-clip_range, clip_range]`` in the samplers.

    Tensors ``x`` have any shape ``(N, ...)``; timesteps are ints or ``(N,)`` long tensors.
    """

    def __init__(self, timesteps: int = 1000, beta_schedule: str = "cosine",
                 prediction: str = "epsilon", *, beta_start: float = 1e-4,
                 beta_end: float = 0.02, clip_sample: bool = True, clip_range: float = 1.0):
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        self.timesteps, self.prediction = timesteps, prediction
        self.clip_sample, self.clip_range = clip_sample, clip_range
        self.betas = make_betas(timesteps, beta_schedule, beta_start, beta_end)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)

    def alpha_bar(self, t, like: torch.Tensor) -> torch.Tensor:
        """``alpha_bar_t``, with ``alpha_bar_{-1} = 1`` (the clean image after the last step)."""
        t = torch.as_tensor(t, dtype=torch.long)
        padded = torch.cat([torch.ones(1), self.alphas_cumprod])
        return _at(padded, t + 1, like)

    # --------------------------------------------------------------- forward process
    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
        """``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``, same shape as ``x0``."""
        a = self.alpha_bar(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def velocity(self, x0: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
        """``v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0``."""
        a = self.alpha_bar(t, x0)
        return a.sqrt() * noise - (1 - a).sqrt() * x0

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
        """What the network learns to output for ``(x_0, eps, t)``."""
        if self.prediction == "epsilon":
            return noise
        if self.prediction == "v_prediction":
            return self.velocity(x0, noise, t)
        return x0

    def split(self, model_output: torch.Tensor, t, x_t: torch.Tensor):
        """``(x_0, eps)`` estimates from the network output at ``(x_t, t)``. ``x_0`` is clipped
        when ``clip_sample``; ``eps`` comes from the unclipped output (diffusers' default)."""
        a = self.alpha_bar(t, x_t)
        if self.prediction == "epsilon":
            eps = model_output
            x0 = (x_t - (1 - a).sqrt() * eps) / a.sqrt()
        elif self.prediction == "v_prediction":
            x0 = a.sqrt() * x_t - (1 - a).sqrt() * model_output
            eps = a.sqrt() * model_output + (1 - a).sqrt() * x_t
        else:
            x0 = model_output
            eps = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
        if self.clip_sample:
            x0 = x0.clamp(-self.clip_range, self.clip_range)
        return x0, eps

    # --------------------------------------------------------------- DDPM
    def ddpm_step(self, model_output: torch.Tensor, t: int, x_t: torch.Tensor,
                  noise: torch.Tensor | None = None) -> torch.Tensor:
        """One ancestral step ``x_t -> x_{t-1}`` (posterior variance ``beta~_t``, "fixed_small";
        no noise is added at ``t = 0``)."""
        a_t, a_prev = self.alpha_bar(t, x_t), self.alpha_bar(t - 1, x_t)
        beta_t = 1 - a_t / a_prev
        x0, _ = self.split(model_output, t, x_t)
        mean = (a_prev.sqrt() * beta_t / (1 - a_t)) * x0 + \
               ((1 - beta_t).sqrt() * (1 - a_prev) / (1 - a_t)) * x_t
        if t > 0:
            var = ((1 - a_prev) / (1 - a_t) * beta_t).clamp(min=1e-20)
            if noise is None:
                noise = torch.randn_like(x_t)
            mean = mean + var.sqrt() * noise
        return mean

    # --------------------------------------------------------------- DDIM
    def ddim_timesteps(self, steps: int, spacing: str = "leading") -> torch.Tensor:
        """The ``steps`` timesteps a DDIM run visits, descending.

        ``"leading"`` (diffusers' default): ``T/steps * k`` for ``k = steps-1 .. 0``, so a
        1-step run starts at ``t = 0`` and a 2-step run at ``T/2``; ``"trailing"``: evenly
        spaced down from ``T - 1`` (``round(T - k T/steps) - 1``), so even a few steps start
        from pure noise at the last timestep (Lin et al., 2024, "Common diffusion noise
        schedules and sample steps are flawed").
        """
        if not 1 <= steps <= self.timesteps:
            raise ValueError(f"DDIM steps must be between 1 and {self.timesteps}, got {steps}")
        if spacing == "leading":
            ratio = self.timesteps // steps
            return (torch.arange(steps) * ratio).flip(0)
        if spacing == "trailing":
            ratio = self.timesteps / steps
            return torch.from_numpy(np.round(np.arange(self.timesteps, 0, -ratio)).astype(np.int64) - 1)
        raise ValueError(f"spacing must be 'leading' or 'trailing', got {spacing!r}")

    def ddim_step(self, model_output: torch.Tensor, t: int, t_prev: int, x_t: torch.Tensor,
                  eta: float = 0.0, noise: torch.Tensor | None = None) -> torch.Tensor:
        """``x_t -> x_{t_prev}`` (``t_prev < 0`` means the end: ``alpha_bar = 1``)."""
        a_t, a_prev = self.alpha_bar(t, x_t), self.alpha_bar(t_prev, x_t)
        x0, eps = self.split(model_output, t, x_t)
        sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev - sigma ** 2).clamp(min=0).sqrt() * eps
        if eta > 0:
            x = x + sigma * (torch.randn_like(x_t) if noise is None else noise)
        return x

    def __repr__(self) -> str:
        return (f"NoiseSchedule(T={self.timesteps}, prediction={self.prediction!r}, "
                f"alpha_bar[0]={self.alphas_cumprod[0]:.5f}, alpha_bar[-1]={self.alphas_cumprod[-1]:.2e})")
