"""The diffusion schedule and samplers against an independent implementation (diffusers)."""

import coursekit  # noqa: F401  (sets OMP_WAIT_POLICY before torch starts)
import pytest
import torch

from coursekit.models.schedule import NoiseSchedule, make_betas

diffusers = pytest.importorskip("diffusers")

DIFFUSERS_NAMES = {"linear": "linear", "scaled_linear": "scaled_linear", "cosine": "squaredcos_cap_v2"}
CASES = [(s, p) for s in DIFFUSERS_NAMES for p in ("epsilon", "v_prediction", "sample")]


def _ours(schedule, prediction, clip=True):
    return NoiseSchedule(1000, schedule, prediction, clip_sample=clip)


def _theirs(cls, schedule, prediction, clip=True):
    return cls(num_train_timesteps=1000, beta_schedule=DIFFUSERS_NAMES[schedule],
               prediction_type=prediction, clip_sample=clip)


def _inputs(seed=0, shape=(4, 3, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g), torch.randn(shape, generator=g)


@pytest.mark.parametrize("schedule", list(DIFFUSERS_NAMES))
def test_betas_match_diffusers(schedule):
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=DIFFUSERS_NAMES[schedule])
    torch.testing.assert_close(make_betas(1000, schedule), ref.betas, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(_ours(schedule, "epsilon").alphas_cumprod, ref.alphas_cumprod,
                               rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("schedule", list(DIFFUSERS_NAMES))
def test_add_noise_and_velocity_match_diffusers(schedule):
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule=DIFFUSERS_NAMES[schedule])
    ours = _ours(schedule, "v_prediction")
    x0, noise, _ = _inputs()
    t = torch.tensor([0, 17, 500, 999])
    torch.testing.assert_close(ours.add_noise(x0, noise, t), ref.add_noise(x0, noise, t))
    torch.testing.assert_close(ours.velocity(x0, noise, t), ref.get_velocity(x0, noise, t))
    assert torch.equal(ours.target(x0, noise, t), ours.velocity(x0, noise, t))


@pytest.mark.parametrize("schedule,prediction", CASES)
@pytest.mark.parametrize("t", [999, 640, 1, 0])
def test_ddpm_step_matches_diffusers(schedule, prediction, t):
    ref = _theirs(diffusers.DDPMScheduler, schedule, prediction)
    ours = _ours(schedule, prediction)
    model_out, x_t, _ = _inputs(t)
    expected = ref.step(model_out, t, x_t, generator=torch.Generator().manual_seed(3)).prev_sample
    noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(ours.ddpm_step(model_out, t, x_t, noise=noise), expected,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("schedule,prediction", CASES)
@pytest.mark.parametrize("steps", [1, 7, 25, 50])
def test_ddim_timesteps_and_steps_match_diffusers(schedule, prediction, steps):
    ref = _theirs(diffusers.DDIMScheduler, schedule, prediction)
    ref.set_timesteps(steps)
    ours = _ours(schedule, prediction)
    ts = ours.ddim_timesteps(steps)
    assert torch.equal(ts, ref.timesteps)
    model_out, x_t, _ = _inputs(steps)
    prevs = [*ts[1:].tolist(), -1]
    for t, t_prev in list(zip(ts.tolist(), prevs))[:: max(1, steps // 5)] + [(ts[-1].item(), -1)]:
        expected = ref.step(model_out, t, x_t, eta=0.0).prev_sample
        torch.testing.assert_close(ours.ddim_step(model_out, t, t_prev, x_t), expected,
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("steps", [1, 2, 7, 25, 50])
def test_trailing_timesteps_match_diffusers(steps):
    ref = diffusers.DDIMScheduler(num_train_timesteps=1000, timestep_spacing="trailing")
    ref.set_timesteps(steps)
    ts = _ours("cosine", "sample").ddim_timesteps(steps, "trailing")
    assert torch.equal(ts, ref.timesteps)
    assert ts[0] == 999  # every run starts from pure noise at the last timestep


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_ddim_stochastic_step_matches_diffusers(prediction):
    ref = _theirs(diffusers.DDIMScheduler, "cosine", prediction)
    ref.set_timesteps(20)
    ours = _ours("cosine", prediction)
    model_out, x_t, noise = _inputs(5)
    t, t_prev = 500, 450
    expected = ref.step(model_out, t, x_t, eta=0.7, variance_noise=noise).prev_sample
    torch.testing.assert_close(ours.ddim_step(model_out, t, t_prev, x_t, eta=0.7, noise=noise),
                               expected, rtol=1e-5, atol=1e-5)


def test_ddim_without_clipping_matches_diffusers():
    ref = _theirs(diffusers.DDIMScheduler, "linear", "epsilon", clip=False)
    ref.set_timesteps(10)
    ours = _ours("linear", "epsilon", clip=False)
    model_out, x_t, _ = _inputs(9)
    expected = ref.step(3 * model_out, 900, x_t).prev_sample
    torch.testing.assert_close(ours.ddim_step(3 * model_out, 900, 800, x_t), expected,
                               rtol=1e-5, atol=1e-5)


def test_a_perfect_denoiser_recovers_the_image_in_one_ddim_run():
    """Independent of diffusers: with the exact eps, DDIM (eta 0) lands on x_0 for any step count."""
    ours = NoiseSchedule(1000, "cosine", "epsilon", clip_sample=False)
    x0, noise, _ = _inputs(1)
    x0 = x0.clamp(-1, 1)
    for steps in (1, 4, 25):
        ts = ours.ddim_timesteps(steps).tolist()
        x = ours.add_noise(x0, noise, ts[0])
        for t, t_prev in zip(ts, [*ts[1:], -1]):
            a = ours.alpha_bar(t, x)
            eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
            x = ours.ddim_step(eps, t, t_prev, x)
        torch.testing.assert_close(x, x0, rtol=1e-4, atol=1e-4)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="prediction"):
        NoiseSchedule(prediction="score")
    with pytest.raises(ValueError, match="beta schedule"):
        make_betas(10, "sigmoid")
    with pytest.raises(ValueError, match="DDIM steps"):
        NoiseSchedule(100).ddim_timesteps(0)
    with pytest.raises(ValueError, match="spacing"):
        NoiseSchedule(100).ddim_timesteps(5, "linspace")
