"""The reproduce experiments' SSIM and PSNR agree with scikit-image's reference implementations.

``krylovadv.torch.reproduce.soae_psnr`` computes Qian et al.'s Table V metrics in
torch (batched, float64); scikit-image's ``structural_similarity`` (Wang et al.'s
Gaussian-window SSIM: ``gaussian_weights=True, sigma=1.5,
use_sample_covariance=False``) and ``peak_signal_noise_ratio`` are the reference.
"""

import numpy as np
import pytest
import skimage.metrics as skimage_metrics
import torch
from hypothesis import given
from hypothesis import strategies as st

from krylovadv.torch.reproduce.soae_psnr import psnr, ssim


def _pair(seed: int, size: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    clean = rng.random((size, size))
    clean[: size // 3] = 0.0  # exact-zero background, as on MNIST digits
    adversarial = np.clip(clean + noise * rng.standard_normal((size, size)), 0.0, 1.0)
    return clean, adversarial


@given(
    seed=st.integers(0, 2**31 - 1),
    size=st.integers(11, 40),
    noise=st.floats(1e-3, 0.5),
)
def test_ssim_matches_scikit_image(seed, size, noise):
    clean, adversarial = _pair(seed, size, noise)
    reference = skimage_metrics.structural_similarity(
        clean,
        adversarial,
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    ours = float(ssim(torch.from_numpy(clean), torch.from_numpy(adversarial)))
    assert ours == pytest.approx(reference, abs=1e-10)


@given(seed=st.integers(0, 2**31 - 1), noise=st.floats(1e-4, 0.5))
def test_psnr_matches_scikit_image_per_image_in_a_batch(seed, noise):
    pairs = [_pair(seed + k, 28, noise * (k + 1)) for k in range(3)]
    clean = torch.from_numpy(np.stack([p[0] for p in pairs])[:, None])
    adversarial = torch.from_numpy(np.stack([p[1] for p in pairs])[:, None])
    ours = psnr(clean, adversarial).numpy()
    reference = [skimage_metrics.peak_signal_noise_ratio(a, b, data_range=1.0) for a, b in pairs]
    np.testing.assert_allclose(ours, reference, rtol=1e-12)


def test_ssim_of_a_batch_is_the_per_image_ssim():
    pairs = [_pair(k, 28, 0.1) for k in range(4)]
    clean = torch.from_numpy(np.stack([p[0] for p in pairs])[:, None])
    adversarial = torch.from_numpy(np.stack([p[1] for p in pairs])[:, None])
    batched = ssim(clean, adversarial).numpy()
    single = [float(ssim(torch.from_numpy(a), torch.from_numpy(b))) for a, b in pairs]
    np.testing.assert_allclose(batched, single, rtol=0, atol=1e-14)
    assert float(ssim(clean[0, 0], clean[0, 0])) == pytest.approx(1.0, abs=1e-12)
