import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import pytest


@pytest.fixture(autouse=True)
def _seed():
    # Python's, NumPy's, TF's and Keras' seeds: a test draws the same numbers whichever tests
    # ran before it in its xdist worker (two tests once depended on that order).
    keras.utils.set_random_seed(0)
