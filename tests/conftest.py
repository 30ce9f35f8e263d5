import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
import tensorflow as tf


@pytest.fixture(autouse=True)
def _seed():
    tf.random.set_seed(0)
