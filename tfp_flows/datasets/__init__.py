"""Toy 2-D densities with known log-densities, for fitting flows and checking them against truth.

Each generator returns float32 samples of shape `[n, 2]` from a seeded NumPy generator, and each
has a matching `*_log_prob` that evaluates the exact density in float64 (by quadrature where it
has no closed form), so held-out NLL can be compared with the data's entropy.

The five sets of the FFJORD paper's toy experiments (Grathwohl et al. 2019,
https://arxiv.org/abs/1810.01367) are in `TOY_DENSITIES`: `scaled_moons`, `eight_gaussians`,
`checkerboard`, `rings` and `pinwheel`, with the same parameters as the paper's generators. Where
those generators use fixed per-class counts or evenly spaced angles, these draw the class and the
angle at random (the same density, i.i.d. samples); the pinwheel's twist is changed slightly so
that its density has a closed form (see `pinwheel`). Their entropies in nats, by integration on
a 1200 x 1200 grid over [-6, 6]^2 (Monte Carlo with `entropy` agrees within its standard error of
about 0.002): moons 2.394, 8 gaussians 2.832, checkerboard log 32 = 3.466, rings 2.623, pinwheel
2.321; `two_moons` (unscaled, noise 0.1) 1.008.

Real data: `digits`, scikit-learn's 8x8 handwritten digits in fixed splits.

Modules: `toy` (`two_moons`, `gaussian_mixture`, `ToyDensity`, `entropy`), `ffjord` (the
five FFJORD sets and `TOY_DENSITIES`), `real_data` (`digits`); every name is importable
from `tfp_flows.datasets`.

Example:

>>> from tfp_flows import datasets
>>> x = datasets.two_moons(1000, seed=0)
>>> x.shape, x.dtype.name
((1000, 2), 'float32')
>>> h, se = datasets.entropy(datasets.two_moons, datasets.two_moons_log_prob, n=5000)
>>> abs(h - 1.006) < 0.03
True
"""

from tfp_flows.datasets import ffjord, real_data, toy
from tfp_flows.datasets.ffjord import TOY_DENSITIES as TOY_DENSITIES
from tfp_flows.datasets.ffjord import checkerboard as checkerboard
from tfp_flows.datasets.ffjord import checkerboard_log_prob as checkerboard_log_prob
from tfp_flows.datasets.ffjord import eight_gaussians as eight_gaussians
from tfp_flows.datasets.ffjord import eight_gaussians_log_prob as eight_gaussians_log_prob
from tfp_flows.datasets.ffjord import pinwheel as pinwheel
from tfp_flows.datasets.ffjord import pinwheel_log_prob as pinwheel_log_prob
from tfp_flows.datasets.ffjord import rings as rings
from tfp_flows.datasets.ffjord import rings_log_prob as rings_log_prob
from tfp_flows.datasets.ffjord import scaled_moons as scaled_moons
from tfp_flows.datasets.ffjord import scaled_moons_log_prob as scaled_moons_log_prob
from tfp_flows.datasets.real_data import DIGITS_LEVELS as DIGITS_LEVELS
from tfp_flows.datasets.real_data import DIGITS_SPLITS as DIGITS_SPLITS
from tfp_flows.datasets.real_data import digits as digits
from tfp_flows.datasets.toy import (
    _MIXTURE_CHOLESKY,  # noqa: F401  (the mixture's parameters; tests rebuild it in TFP)
    _MIXTURE_MEANS,  # noqa: F401
    _MIXTURE_WEIGHTS,  # noqa: F401
)
from tfp_flows.datasets.toy import ToyDensity as ToyDensity
from tfp_flows.datasets.toy import entropy as entropy
from tfp_flows.datasets.toy import gaussian_mixture as gaussian_mixture
from tfp_flows.datasets.toy import gaussian_mixture_log_prob as gaussian_mixture_log_prob
from tfp_flows.datasets.toy import two_moons as two_moons
from tfp_flows.datasets.toy import two_moons_log_prob as two_moons_log_prob

# Every public name of the three modules (imported one by one above, so readers and linters
# see them).
__all__ = sorted([*ffjord.__all__, *real_data.__all__, *toy.__all__])
