"""TFP's built-in flows: `MaskedAutoregressiveFlow`, `RealNVP` and `Glow`, sized as the cases."""

from __future__ import annotations

import itertools

from ._tf import TFRunner, standard_normal
from .cases import SPLINE_BOUND

__all__ = ["FLOWS", "FRAMEWORK", "MODES", "REQUIRES", "label", "make_runner"]

FRAMEWORK, MODES, FLOWS = "tf", TFRunner.modes, ("maf", "nsf", "realnvp", "glow")
REQUIRES = ("tensorflow", "tensorflow_probability", "tf_keras")
NAMES = {
    "maf": "MaskedAutoregressiveFlow",
    "nsf": "MaskedAutoregressiveFlow + RationalQuadraticSpline",
    "realnvp": "RealNVP",
    "glow": "Glow",
}


def label(mode: str, flow: str) -> str:
    """Row label in a table of `flow` cases."""
    return f"TFP {NAMES[flow]}, " + ("jit_compile=True" if mode == "xla" else "tf.function")


def maf(tf, dim: int, hidden: int, layers: int):
    """`layers` MAFs on `tfb.AutoregressiveNetwork`s `D -> H -> H -> 2D`, order reversed."""
    import tensorflow_probability as tfp

    tfb, tfd = tfp.bijectors, tfp.distributions
    bijectors = []
    for i in range(layers):
        net = tfb.AutoregressiveNetwork(
            params=2, hidden_units=[hidden, hidden], activation="relu", event_shape=[dim]
        )
        bijectors.append(tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=net))
        if i < layers - 1:
            bijectors.append(tfb.Permute(list(range(dim))[::-1]))
    return tfd.TransformedDistribution(standard_normal(tf, [dim]), tfb.Chain(bijectors))


def spline_maf(tf, dim: int, hidden: int, layers: int, bins: int):
    """`layers` MAFs whose `bijector_fn` is a `tfb.RationalQuadraticSpline` on `+-SPLINE_BOUND`, its
    `3 * bins - 1` parameters per dimension from a `tfb.AutoregressiveNetwork` `D -> H -> H`."""
    import tensorflow_probability as tfp

    tfb, tfd = tfp.bijectors, tfp.distributions
    bound, least = SPLINE_BOUND, 1e-3  # the smallest bin share and slope, as zuko's

    class SplineFn(tf.Module):  # a module, so the distribution tracks the network's variables
        def __init__(self, net):
            super().__init__()
            self.net = net

        def __call__(self, x, **kwargs):
            params = self.net(x)  # [..., D, 3 * bins - 1]
            widths, heights = params[..., :bins], params[..., bins : 2 * bins]
            share = 2 * bound * (1 - bins * least)
            return tfb.RationalQuadraticSpline(
                bin_widths=tf.nn.softmax(widths) * share + 2 * bound * least,
                bin_heights=tf.nn.softmax(heights) * share + 2 * bound * least,
                knot_slopes=tf.nn.softplus(params[..., 2 * bins :]) + least,
                range_min=-bound,
            )

    bijectors = []
    for i in range(layers):
        net = tfb.AutoregressiveNetwork(
            params=3 * bins - 1,
            hidden_units=[hidden, hidden],
            activation="relu",
            event_shape=[dim],
        )
        bijectors.append(tfb.MaskedAutoregressiveFlow(bijector_fn=SplineFn(net)))
        if i < layers - 1:
            bijectors.append(tfb.Permute(list(range(dim))[::-1]))
    return tfd.TransformedDistribution(standard_normal(tf, [dim]), tfb.Chain(bijectors))


def _mlp_module(tf):
    class MLP(tf.Module):
        """A TF2 (Keras-free) MLP `x -> (shift, log_scale)`: TFP RealNVP's conditioner."""

        def __init__(self, d_in, hidden, d_out, seed, name=None):
            super().__init__(name=name)
            sizes = [d_in, hidden, hidden, 2 * d_out]
            self.kernels, self.biases = [], []
            for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
                last = i == len(sizes) - 2
                limit = (6.0 / (fan_in + fan_out)) ** 0.5  # Glorot uniform, last layer zero
                init = tf.random.stateless_uniform([fan_in, fan_out], [seed, i], -limit, limit) * (
                    0.0 if last else 1.0
                )
                self.kernels.append(tf.Variable(init, name=f"kernel_{i}"))
                self.biases.append(tf.Variable(tf.zeros([fan_out]), name=f"bias_{i}"))

        def __call__(self, x, output_units, **kwargs):
            h = x
            for i, (kernel, bias) in enumerate(zip(self.kernels, self.biases)):
                h = tf.matmul(h, kernel) + bias
                if i < len(self.kernels) - 1:
                    h = tf.nn.relu(h)
            return h[..., :output_units], h[..., output_units:]

    return MLP


def real_nvp(tf, dim: int, hidden: int, layers: int):
    """`layers` `tfb.RealNVP` couplings on MLPs `D/2 -> H -> H -> 2 * D/2`, halves reversed."""
    import tensorflow_probability as tfp

    tfb, tfd = tfp.bijectors, tfp.distributions
    mlp = _mlp_module(tf)
    kept = dim // 2
    bijectors = []
    for i in range(layers):
        net = mlp(kept, hidden, dim - kept, seed=i, name=f"mlp_{i}")
        bijectors.append(tfb.RealNVP(num_masked=kept, shift_and_log_scale_fn=net))
        if i < layers - 1:  # reversing swaps the halves (D even) so the other half moves next
            bijectors.append(tfb.Permute(list(range(dim))[::-1]))
    return tfd.TransformedDistribution(standard_normal(tf, [dim]), tfb.Chain(bijectors))


def glow(tf, image_shape, levels: int, steps: int, filters: int):
    """`tfb.Glow` with tfp_flows' two-conv coupling network and TFP's default exit network."""
    import tensorflow_probability as tfp
    from tensorflow_probability.python.internal import tf_keras

    tfb, tfd = tfp.bijectors, tfp.distributions
    layers = tf_keras.layers

    def coupling_net(input_shape):  # the same network as tfp_flows' ConvConditioner(blocks=0)
        return tf_keras.Sequential(
            [
                layers.Input(shape=input_shape),
                layers.Conv2D(
                    filters, 3, padding="same", activation="relu", kernel_initializer="he_normal"
                ),
                layers.Conv2D(2 * (input_shape[-1]), 3, padding="same", kernel_initializer="zeros"),
            ]
        )

    bijector = tfb.Glow(
        output_shape=list(image_shape),
        num_glow_blocks=levels,
        num_steps_per_block=steps,
        coupling_bijector_fn=coupling_net,
        exit_bijector_fn=tfb.GlowDefaultExitNetwork,  # TFP's default (one zero-init conv3x3)
        seed=0,
    )
    size = int(image_shape[0] * image_shape[1] * image_shape[2])
    return tfd.TransformedDistribution(standard_normal(tf, [size]), bijector)


class TfpRunner(TFRunner):
    library = "tfp"

    def build(self):
        c, tf = self.case, self.tf
        if c["flow"] == "maf":
            return maf(tf, c["dim"], c["hidden"], c["layers"]), None, "unclamped exp (TFP default)"
        if c["flow"] == "nsf":
            dist = spline_maf(tf, c["dim"], c["hidden"], c["layers"], c["bins"])
            note = f"tfb.RationalQuadraticSpline, {c['bins']} bins on +-{SPLINE_BOUND:g}"
            return dist, None, note
        if c["flow"] == "realnvp":
            dist = real_nvp(tf, c["dim"], c["hidden"], c["layers"])
            return dist, None, "unclamped exp (TFP RealNVP default)"
        shape = [int(v) for v in c["image_shape"]]
        dist = glow(tf, shape, c["levels"], c["steps"], c["filters"])
        return dist, None, "sigmoid(s + 2) scale (TFP Glow)"


def make_runner(case: dict, mode: str, **options) -> TfpRunner:
    """A runner of `case` in `mode` (`"xla"` or `"graph"`); `options`: `threads`."""
    return TfpRunner(case, mode, **options)
