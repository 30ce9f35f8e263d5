"""Glow and Real NVP on scikit-learn's 8x8 digits: test bits/dim, samples and reconstructions.

The protocol (that of `benchmarks/quality_digits.py`): the 1797 bundled images, levels 0..16
(17 bins), split in their stored order into train 0:1000, validation 1000:1350 and test 1350:.
Training batches are dequantised afresh, `x = (k + u) / 17` with `u ~ U[0, 1)`, and the flows
start with Real NVP's logit pre-transform (`alpha = 0.05`, its log-det counted), so
`bits/dim = (-log q(x) + 64 log 17) / (64 log 2)` bounds the discrete likelihood. After the
logit, each flow has a learned monotone spline per pixel (`pixel_spline_bins`, see
`tfp_flows.images.PixelwiseSpline`) for the bimodal (background or ink) pixel marginals. Training is
Keras `fit` on a `tfp_flows.keras.DensityModel`, with AdamW (decoupled weight decay) and
early stopping on validation bits/dim (one fixed dequantisation of the validation images),
restoring the best weights. Test bits/dim is averaged over 10 dequantisation draws.

Writes into `--out`: `samples.png` (samples at temperature `--temperature`, i.e. latents drawn
from N(0, T^2 I)), `reconstructions_{glow,real_nvp}.png` (test images, their latents and the
round trip x -> z -> x, with the largest round-trip error) and `metrics.json`. Each model trains
for at most `--max-seconds` (240, counted from the first step; early stopping usually ends it
sooner) in plain `tf.function` (`--jit` for XLA, whose compile takes minutes here).

    python examples/digits.py [--models glow,real_nvp] [--out DIR] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from tfp_flows import datasets
from tfp_flows.bijectors import initialize_actnorm
from tfp_flows.images import bits_per_dim, dequantize
from tfp_flows.keras import DensityModel

LEVELS = datasets.DIGITS_LEVELS
SHAPE = (8, 8, 1)
NUM_DIMS = math.prod(SHAPE)
ALPHA = 0.05

# Chosen on the validation split: small conditioners, and a learned monotone spline per pixel
# after the logit (`pixel_spline_bins`): pixel marginals are bimodal (background or ink), which
# affine couplings model poorly. The flows overfit 1000 images within a few hundred steps, so
# early stopping picks the step.
FLOWS = {
    "glow": dict(levels=2, steps_per_level=4, filters=32, num_blocks=1, pixel_spline_bins=16),
    "real_nvp": dict(
        num_scales=2, steps_per_scale=2, filters=32, num_blocks=1, pixel_spline_bins=16
    ),
}
SMOKE_FLOWS = {
    "glow": dict(levels=2, steps_per_level=1, filters=4, num_blocks=1, pixel_spline_bins=4),
    "real_nvp": dict(num_scales=1, steps_per_scale=1, filters=4, num_blocks=1, pixel_spline_bins=4),
}


def dequantised_batches(pixels: np.ndarray, batch_size: int, seed: int) -> tf.data.Dataset:
    """Shuffled batches of `(k + u) / 17`, with fresh noise `u` for every batch of every epoch."""
    levels = tf.constant(pixels, tf.float32)
    return (
        tf.data.Dataset.from_tensor_slices(levels)
        .shuffle(len(pixels), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size, drop_remainder=True)  # one shape: one compiled step
        .map(lambda k: (k + tf.random.uniform(tf.shape(k), seed=seed)) / LEVELS)
        .prefetch(2)
    )


def test_bits_per_dim(flow, pixels: np.ndarray, draws: int = 10, seed: int = 1234) -> float:
    """Mean bits/dim of `pixels` over `draws` independent dequantisations."""
    log_prob = tf.function(flow.log_prob)
    values = [
        bits_per_dim(
            log_prob(dequantize(pixels, LEVELS, seed=[seed, i])),
            num_dims=NUM_DIMS,
            num_bins=LEVELS,
        )
        for i in range(draws)
    ]
    return float(tf.reduce_mean(values))


class TimeBudget(keras.callbacks.Callback):
    """Stops training at the end of the first epoch that ends `seconds` after the first step.

    The clock starts when the first training step has finished, so tracing and compiling the
    step are not counted.
    """

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.start = None

    def on_train_batch_end(self, batch, logs=None):
        if self.start is None:
            self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if time.perf_counter() - self.start > self.seconds:
            self.model.stop_training = True


def train(name: str, flow_kwargs: dict, data: dict, args) -> tuple[DensityModel, dict]:
    """Fits one flow with Keras `fit` and early stopping; returns the model and its figures."""
    keras.utils.set_random_seed(args.seed)
    model = DensityModel(
        "glow" if name == "glow" else "real_nvp",
        {"image_shape" if name == "glow" else "event_shape": list(SHAPE)}
        | flow_kwargs
        | {"logit_alpha": ALPHA},
        num_bins=LEVELS,
    )
    # ActNorm's data-dependent init from the whole training set, before the optimizer sees it.
    initialize_actnorm(model.flow, dequantize(data["train"], LEVELS, seed=[args.seed, 0]))
    steps_per_epoch = len(data["train"]) // args.batch
    lr = args.lr
    if args.lr_half_life:
        lr = keras.optimizers.schedules.ExponentialDecay(args.lr, args.lr_half_life, 0.5)
    model.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate=lr,
            weight_decay=args.weight_decay,
            clipnorm=args.clipnorm,
            use_ema=args.ema > 0,
            ema_momentum=args.ema or 0.99,
        ),
        jit_compile=args.jit,
    )
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_bits_per_dim", mode="min", patience=args.patience, restore_best_weights=True
    )
    start = time.perf_counter()
    history = model.fit(
        dequantised_batches(data["train"], args.batch, args.seed),
        validation_data=tf.data.Dataset.from_tensors(data["val"]),  # one batch: one shape
        epochs=args.epochs,
        shuffle=False,  # the dataset shuffles itself
        # With EMA, validation and the weights early stopping keeps are the moving averages:
        # SwapEMAWeights must come before EarlyStopping.
        callbacks=[
            *([keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if args.ema > 0 else []),
            stopper,
            TimeBudget(args.max_seconds),
        ],
        verbose=2 if not args.smoke else 0,
    )
    seconds = time.perf_counter() - start
    val = history.history["val_bits_per_dim"]
    best_epoch = int(np.argmin(val))
    figures = {
        "test_bits_per_dim": round(test_bits_per_dim(model.flow, data["test"]), 4),
        "best_val_bits_per_dim": round(float(val[best_epoch]), 4),
        "best_step": (best_epoch + 1) * steps_per_epoch,
        "steps_run": len(val) * steps_per_epoch,
        "train_seconds": round(seconds, 1),
        "num_parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
        "flow_kwargs": flow_kwargs,
    }
    return model, figures


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="glow,real_nvp", help="comma-separated: glow,real_nvp")
    parser.add_argument("--epochs", type=int, default=400, help="upper bound; early stopping ends")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW, decoupled")
    parser.add_argument("--clipnorm", type=float, default=10.0)
    parser.add_argument("--patience", type=int, default=10, help="epochs without improvement")
    parser.add_argument(
        "--max-seconds", type=float, default=240.0, help="training budget per model"
    )
    parser.add_argument("--temperature", type=float, default=0.75, help="for the sample grid")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-kwargs", default="{}", help="overrides of the flows' kwargs")
    parser.add_argument("--lr-half-life", type=int, default=0, help="steps; 0: constant lr")
    parser.add_argument("--ema", type=float, default=0.0, help="Polyak averaging momentum; 0: off")
    parser.add_argument("--jit", action="store_true", help="XLA-compile the step (slow compile)")
    parser.add_argument("--smoke", action="store_true", help="tiny flows, 2 epochs, no XLA")
    parser.add_argument("--out", default="out/digits")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    data = {
        "train": datasets.digits("train"),
        "val": datasets.digits("validation"),
        "test": datasets.digits("test"),
    }
    configs = SMOKE_FLOWS if args.smoke else FLOWS
    if args.smoke:
        args.epochs, args.jit = 2, False
        data["train"], data["test"] = data["train"][:256], data["test"][:64]
    # One fixed dequantisation of the validation images, so epochs are compared on equal terms.
    data["val"] = dequantize(data["val"], LEVELS, seed=[args.seed, 99]).numpy()
    overrides = json.loads(args.json_kwargs)

    models, results = {}, {}
    for name in args.models.split(","):
        if name not in configs:
            raise ValueError(f"unknown model {name!r}; choose from {sorted(configs)}")
        models[name], results[name] = train(name, configs[name] | overrides, data, args)
        print(f"{name}: {results[name]}")

    results = {
        "protocol": "sklearn digits, train 0:1000, val 1000:1350, test 1350:; 17 levels; "
        "fresh dequantisation per batch; logit alpha 0.05; early stopping on val bits/dim; "
        "test bits/dim over 10 dequantisation draws",
        "temperature": args.temperature,
        **{name: {**r, "round_trip_max_abs_error": None} for name, r in results.items()},
    }
    for name, model in models.items():
        results[name]["round_trip_max_abs_error"] = plot_reconstructions(
            model.flow, data["test"][:10], os.path.join(args.out, f"reconstructions_{name}.png")
        )
    plot_samples(models, args.temperature, os.path.join(args.out, "samples.png"), seed=args.seed)

    print(f"\n{'model':<10} {'test bits/dim':>14} {'best val':>9} {'best step':>10} {'time':>7}")
    for name in models:
        r = results[name]
        print(
            f"{name:<10} {r['test_bits_per_dim']:>14.3f} {r['best_val_bits_per_dim']:>9.3f} "
            f"{r['best_step']:>10d} {r['train_seconds']:>6.0f}s"
        )
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(results, f, indent=2)
    return results


def _image_grid(ax, images: np.ndarray, rows: int, title: str) -> None:
    cols = len(images) // rows
    grid = images[: rows * cols, ..., 0].reshape(rows, cols, 8, 8)
    grid = np.pad(grid, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=1.0)
    grid = grid.transpose(0, 2, 1, 3).reshape(rows * 10, cols * 10)
    ax.imshow(grid, cmap="gray_r", vmin=0.0, vmax=1.0)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def plot_samples(models: dict, temperature: float, path: str, *, seed: int = 0) -> None:
    """A grid of samples per flow: latents from N(0, T^2 I), pushed through the flow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 4.3), squeeze=False)
    for ax, (name, model) in zip(axes[0], models.items()):
        flow = model.flow
        z = temperature * flow.distribution.sample(64, seed=seed)
        x = np.clip(flow.bijector.forward(z).numpy(), 0.0, 1.0)
        _image_grid(ax, x, 8, f"{name} samples, T = {temperature}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")


def plot_reconstructions(flow, pixels: np.ndarray, path: str) -> float:
    """Test images, their latents and x -> z -> x; returns the largest round-trip error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = dequantize(pixels, LEVELS, seed=[7, 7])
    z = flow.bijector.inverse(x)
    x_back = flow.bijector.forward(tf.identity(z))  # identity: no cached inverse to reuse
    error = float(tf.reduce_max(tf.abs(x_back - x)))
    z_shown = 1.0 / (1.0 + np.exp(-z.numpy()))  # squash the latents to [0, 1] to show them
    fig, axes = plt.subplots(3, 1, figsize=(8, 3.6))
    _image_grid(axes[0], x.numpy(), 1, "test images x (dequantised)")
    _image_grid(axes[1], z_shown, 1, "latents z = f^-1(x) (sigmoid)")
    _image_grid(axes[2], x_back.numpy(), 1, f"f(z): max |x - f(f^-1(x))| = {error:.1e}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path}")
    return error


if __name__ == "__main__":
    main()
