"""The energy targets' log-normalisers: the chunked midpoint rule against a closed form."""

import math

import numpy as np
import pytest

from tfp_flows import targets


def test_log_normalizer_matches_the_closed_form_of_u2():
    # U2 plus the confining term: z2 - w1(z1) ~ N(0, 0.4^2) given z1, and z1 ~ N(0, 2^2), so
    # Z = sqrt(2 pi 2^2) * sqrt(2 pi 0.4^2) = 2 pi * 2 * 0.4 whatever w1 is.
    np.testing.assert_allclose(targets.log_normalizer("u2"), math.log(2 * math.pi * 0.8), atol=1e-6)


@pytest.mark.parametrize("name", ["u1", "u3"])
def test_log_normalizer_does_not_depend_on_the_chunking(name):
    whole = targets.log_normalizer(name, num=301, rows=301)
    for rows in (1, 7, 64):
        np.testing.assert_allclose(
            targets.log_normalizer(name, num=301, rows=rows), whole, rtol=1e-12
        )
