"""Bonus: CPU speed-ups for the same model, the same maths and the same saved files.

Everything here is optional and off the lesson's path. The notebooks build the plain
Keras model of notebook 02 and train it with ``model.fit``; with ``speedups`` on
(``"auto"``: only where TensorFlow sees no GPU and no TPU), the :class:`SpeedUps`
callback swaps some of that model's computations for faster ones when training
starts. The layers keep their Keras classes, names and weights, so ``summary()``
reads the same and every saved file loads with Keras alone. The swaps:

* **BatchNormalization** by TensorFlow's fused kernel (one pass over the activations
  instead of several). One difference: the kernel updates the moving variance with
  the unbiased batch variance (n / (n - 1) times Keras' value).
* **The convolutions of blocks 4 and 5** (pictures of 4x4 and 2x2 pixels with 256 to
  512 channels, where TensorFlow's CPU convolution kernels are slow) as matrix
  products: the output as one product per kernel tap, summed in float32; the
  kernel's gradient as one product of the input's patches with the output's gradient.
* **Adam's and SGD's update** of each weight by TensorFlow's one-pass kernels
  (``ResourceApplyAdam``, ``ResourceApplyKerasMomentum``) instead of about ten
  separate passes over the 33.6M weights. These read optimizer slots that Keras
  keeps under private names; if a Keras release renames them, the update falls back
  to Keras' own code with one warning.

:func:`fold_batchnorm` makes a copy for fast predictions, with every BatchNormalization
folded into its convolution. How much each swap gains, measured, is in
``bench/README.md``; with a GPU, Keras' own code (with XLA) is the fast path.
"""

from __future__ import annotations

import types
import warnings

import keras
import numpy as np
from keras import layers

from . import backends
from .environment import accelerator_present, precision_policy
from .language import say
from .model import build_vgg16
from .settings import SPEEDUPS, check_params

#: Largest picture (height x width) whose convolutions become matrix products.
MAX_PIXELS = 16
#: Keras' private optimizer attributes that the fused updates read.
ADAM_SLOTS = ("_momentums", "_velocities")
SGD_SLOTS = ("momentums",)
VARIABLE_INDEX = "_get_variable_index"

_APPLIED = "_vggcifar_speedup"  # marks a layer or optimizer that is already swapped


def speedups_enabled(speedups="auto"):
    """True where the speed-ups should run: ``"auto"`` means no GPU and no TPU in sight.

    They are TensorFlow's kernels, so on JAX and PyTorch they stay off; asked for there
    (``True``), they say so once and Keras' own code trains the same model.
    """
    speedups = check_params(speedups=speedups)["speedups"]
    if not backends.on_tensorflow():
        if speedups is True:
            print(
                say(
                    en=f"speedups=True: the CPU speed-ups are TensorFlow's kernels, and Keras runs on "
                    f"{backends.framework()[0]} here; Keras' own code trains the same model.",
                    ja=f"speedups=True: CPU 高速化は TensorFlow のカーネルを使いますが、ここでは Keras "
                    f"が {backends.framework()[0]} で動いています。同じモデルを Keras 自身のコードで"
                    "学習します。",
                )
            )
        return False
    return not accelerator_present() if speedups == "auto" else speedups


class SpeedUps(keras.callbacks.Callback):
    """A callback that swaps in the CPU speed-ups when ``fit`` starts (see the module's help).

    ``SpeedUps("auto")`` does it only where no GPU or TPU is visible; ``True`` forces
    it, ``False`` leaves the model alone. ``swapped`` counts what was swapped.
    """

    def __init__(self, speedups="auto"):
        super().__init__()
        self.enabled = speedups_enabled(speedups)
        self.swapped = {}

    def on_train_begin(self, logs=None):
        if self.enabled:
            self.swapped = apply_speedups(self.model)


def apply_speedups(model):
    """Swap the faster computations into ``model`` (and its optimizer); returns what was swapped.

    Safe to call twice. The functions Keras has already traced for this model are
    dropped, so the next ``fit``, ``evaluate`` or ``predict`` uses the swaps.
    """
    swapped = {"batchnorm": 0, "conv": 0, "optimizer": None}
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization) and _fusable(layer):
            swapped["batchnorm"] += _swap(layer, "call", _fused_batchnorm_call)
        elif type(layer) is layers.Conv2D:
            swapped["conv"] += _swap(layer, "convolution_op", _small_picture_convolution)
    optimizer = getattr(model, "optimizer", None)
    already = getattr(getattr(optimizer, "inner_optimizer", optimizer), _APPLIED + "update_step", False)
    swapped["optimizer"] = None if already else speed_up_optimizer(optimizer)
    if swapped["batchnorm"] or swapped["conv"] or swapped["optimizer"]:
        # functions Keras traced before the swap would not use it; fit holds on to its own
        if getattr(model, "train_function", None) is not None:
            model.make_train_function(force=True)
        model.test_function = model.predict_function = None
    return swapped


def speed_up_optimizer(optimizer):
    """Swap TensorFlow's fused update into Keras' Adam or SGD (with momentum); returns its name, or None."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # under a LossScaleOptimizer
    if type(optimizer) is keras.optimizers.Adam and not optimizer.amsgrad:
        _swap(optimizer, "update_step", _fused_adam_update)
        return "Adam"
    if type(optimizer) is keras.optimizers.SGD and optimizer.momentum:
        _swap(optimizer, "update_step", _fused_sgd_update)
        return "SGD"
    return None


def speedups_applied(model):
    """True when any of ``model``'s layers computes with a swapped-in speed-up."""
    return any(
        getattr(layer, _APPLIED + name, False)
        for layer in model.layers
        for name in ("call", "convolution_op")
    )


def _swap(owner, name, function):
    """Replace ``owner.name`` by ``function`` bound to ``owner``; the original stays reachable."""
    if getattr(owner, _APPLIED + name, False):
        return 0
    original = getattr(owner, name)
    setattr(owner, name, types.MethodType(lambda self, *a, **k: function(self, original, *a, **k), owner))
    setattr(owner, _APPLIED + name, True)
    return 1


# --- BatchNormalization by the fused kernel -----------------------------------------


def _fusable(layer):
    return (
        layer.center
        and layer.scale
        and layer.axis in (-1, 3, [3])
        and not getattr(layer, "synchronized", False)
        and not getattr(layer, "renorm", False)
    )


def _fused_batchnorm_call(layer, original, inputs, training=None, mask=None):
    if keras.backend.backend() != "tensorflow" or len(inputs.shape) != 4:
        return original(inputs, training=training, mask=mask)
    import tensorflow as tf

    inputs = tf.cast(inputs, layer.compute_dtype)
    if training and layer.trainable:
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            layer.gamma,
            layer.beta,
            mean=layer.moving_mean,
            variance=layer.moving_variance,
            epsilon=layer.epsilon,
            is_training=True,
            exponential_avg_factor=1.0 - layer.momentum,
        )
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(variance)
        return outputs
    outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
        inputs,
        layer.gamma,
        layer.beta,
        mean=layer.moving_mean,
        variance=layer.moving_variance,
        epsilon=layer.epsilon,
        is_training=False,
    )
    return outputs


# --- convolutions on small pictures as matrix products ------------------------------


def _small_picture_convolution(layer, original, inputs, kernel):
    height, width = inputs.shape[1], inputs.shape[2]
    if (
        keras.backend.backend() != "tensorflow"
        or layer.data_format != "channels_last"
        or tuple(layer.strides) != (1, 1)
        or tuple(layer.dilation_rate) != (1, 1)
        or layer.groups != 1
        or height is None
        or width is None
        or height * width > MAX_PIXELS
    ):
        return original(inputs, kernel)
    return conv2d_as_matmuls(inputs, kernel, layer.padding.upper())


def shifted_matmuls(x, kernel, padding):
    """A stride-1 convolution as one matrix product per kernel tap, summed.

    Tap (i, j) multiplies every input pixel's channels by ``kernel[i, j]`` and adds the
    result to the output pixel ``i - pad`` rows above and ``j - pad`` columns left of
    it. Each product covers only the output pixels the tap can reach from inside the
    picture (with padding, the rest would be multiplications by zero); ``tf.pad``
    fills the others with zeros before the sum. In 16-bit precisions the products are
    summed in float32, as a convolution kernel sums.
    """
    import tensorflow as tf

    kernel_h, kernel_w = kernel.shape[0], kernel.shape[1]
    height, width = x.shape[1], x.shape[2]
    if padding == "SAME":  # TensorFlow puts the odd padding pixel at the bottom and right
        (pad_h, pad_w), (out_h, out_w) = ((kernel_h - 1) // 2, (kernel_w - 1) // 2), (height, width)
    else:
        (pad_h, pad_w), (out_h, out_w) = (0, 0), (height - kernel_h + 1, width - kernel_w + 1)
    total_dtype = tf.float32 if x.dtype in (tf.bfloat16, tf.float16) else x.dtype
    parts = []
    for i in range(kernel_h):
        top, bottom = max(0, pad_h - i), min(out_h, height + pad_h - i)  # output rows
        for j in range(kernel_w):
            left, right = max(0, pad_w - j), min(out_w, width + pad_w - j)  # output columns
            if top >= bottom or left >= right:
                continue  # this tap only ever sees padding
            window = x[:, top + i - pad_h : bottom + i - pad_h, left + j - pad_w : right + j - pad_w, :]
            part = tf.cast(tf.tensordot(window, kernel[i, j], axes=1), total_dtype)
            parts.append(tf.pad(part, [[0, 0], [top, out_h - bottom], [left, out_w - right], [0, 0]]))
    return tf.cast(tf.add_n(parts), x.dtype)


def conv2d_as_matmuls(inputs, kernel, padding):
    """Conv2D's output by :func:`shifted_matmuls`; its kernel gradient as one product of patches.

    The input's gradient keeps TensorFlow's kernel.
    """
    import tensorflow as tf

    @tf.custom_gradient
    def convolve(x, k):
        def gradient(dy):
            dx = tf.raw_ops.Conv2DBackpropInput(
                input_sizes=tf.shape(x), filter=k, out_backprop=dy, strides=[1, 1, 1, 1], padding=padding
            )
            kh, kw, channels_in, channels_out = k.shape
            patches = tf.image.extract_patches(x, [1, kh, kw, 1], [1, 1, 1, 1], [1, 1, 1, 1], padding)
            dk = tf.matmul(
                tf.reshape(patches, (-1, kh * kw * channels_in)),
                tf.reshape(dy, (-1, channels_out)),
                transpose_a=True,
            )
            return dx, tf.reshape(dk, k.shape)

        return shifted_matmuls(x, k, padding), gradient

    # tensors, not variables: the gradient above is the kernel's, whoever holds it
    return convolve(tf.convert_to_tensor(inputs), tf.convert_to_tensor(kernel))


# --- the optimizers' update by TensorFlow's fused kernels ---------------------------


def _slots_present(optimizer, slots):
    """True when Keras keeps the optimizer's slots where the fused update reads them; warns once if not."""
    if all(hasattr(optimizer, name) for name in (*slots, VARIABLE_INDEX)):
        return True
    if not getattr(optimizer, "_vggcifar_warned", False):
        optimizer._vggcifar_warned = True
        warnings.warn(
            f"vggcifar.speed: this Keras ({keras.__version__}) keeps {type(optimizer).__name__}'s "
            f"state under other names than {', '.join(slots)}; its update uses Keras' own "
            "code instead of TensorFlow's fused kernel (same results, slower on CPUs)",
            RuntimeWarning,
            stacklevel=2,
        )
    return False


def _fused_kernel_applies(variable):
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return (
        isinstance(variable, tf.Variable)
        and hasattr(variable, "handle")
        and tf.distribute.get_strategy().num_replicas_in_sync == 1
    )


def _fused_adam_update(optimizer, original, gradient, variable, learning_rate):
    """Keras' Adam update, ``m ← β1·m + (1-β1)·g``, ``v ← β2·v + (1-β2)·g²``,
    ``w ← w - lr·√(1-β2ᵗ)/(1-β1ᵗ) · m / (√v + ε)``, as TensorFlow's ``ResourceApplyAdam``."""
    if not _fused_kernel_applies(variable) or not _slots_present(optimizer, ADAM_SLOTS):
        return original(gradient, variable, learning_rate)
    import tensorflow as tf

    dtype = variable.dtype
    index = getattr(optimizer, VARIABLE_INDEX)(variable)
    momentums, velocities = (getattr(optimizer, name) for name in ADAM_SLOTS)
    step = tf.cast(optimizer.iterations + 1, dtype)
    beta_1, beta_2 = tf.cast(optimizer.beta_1, dtype), tf.cast(optimizer.beta_2, dtype)
    tf.raw_ops.ResourceApplyAdam(
        var=variable.handle,
        m=momentums[index].value.handle,
        v=velocities[index].value.handle,
        beta1_power=tf.pow(beta_1, step),
        beta2_power=tf.pow(beta_2, step),
        lr=tf.cast(learning_rate, dtype),
        beta1=beta_1,
        beta2=beta_2,
        epsilon=tf.cast(optimizer.epsilon, dtype),
        grad=tf.cast(gradient, dtype),
    )


def _fused_sgd_update(optimizer, original, gradient, variable, learning_rate):
    """Keras' SGD with momentum, ``u ← μ·u - lr·g``, ``w ← w + u`` (Nesterov: ``w ← w + μ·u - lr·g``),
    as TensorFlow's ``ResourceApplyKerasMomentum``."""
    if not _fused_kernel_applies(variable) or not _slots_present(optimizer, SGD_SLOTS):
        return original(gradient, variable, learning_rate)
    import tensorflow as tf

    dtype = variable.dtype
    index = getattr(optimizer, VARIABLE_INDEX)(variable)
    momentums = getattr(optimizer, SGD_SLOTS[0])
    tf.raw_ops.ResourceApplyKerasMomentum(
        var=variable.handle,
        accum=momentums[index].value.handle,
        lr=tf.cast(learning_rate, dtype),
        grad=tf.cast(gradient, dtype),
        momentum=tf.cast(optimizer.momentum, dtype),
        use_nesterov=optimizer.nesterov,
    )


# --- predictions with BatchNormalization folded into the convolutions ----------------


def fold_batchnorm(model, policy=None):
    """A copy of ``model`` for prediction only, with each BatchNormalization folded into its convolution.

    When predicting, BatchNormalization is a fixed per-channel scale and shift:
    ``gamma * (x - mean) / sqrt(variance + epsilon) + beta``. Applied to a convolution's
    output it can be multiplied into the convolution's kernel and bias once, and the
    layer disappears: the same predictions (up to rounding) with 13 fewer passes over
    the activations. The copy is a plain Keras model (``build_vgg16(batch_norm=False)``)
    with the small-picture convolutions swapped in; ``policy`` sets its precision
    (default: the model's).
    """
    if not any(isinstance(layer, layers.BatchNormalization) for layer in model.layers):
        raise ValueError("fold_batchnorm: the model has no BatchNormalization layers")
    by_name = {layer.name: layer for layer in model.layers}
    dense = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
    convs = [layer.name for layer in model.layers if isinstance(layer, layers.Conv2D)]
    with precision_policy(policy or model.layers[0].dtype_policy.name):
        folded = build_vgg16(
            tuple(model.input_shape[1:]),
            dense[-1].units,
            batch_norm=False,
            fc_units=dense[0].units,
            name=f"{model.name}_folded",
        )
    for layer in folded.layers:
        source = by_name[layer.name]
        if isinstance(layer, layers.Conv2D):
            bn = by_name[f"bn{convs.index(layer.name) + 1}"]
            gamma, beta, mean, variance = (np.asarray(w) for w in bn.get_weights())
            scale = gamma / np.sqrt(variance + bn.epsilon)
            kernel, bias = source.get_weights()
            layer.set_weights([kernel * scale, (bias - mean) * scale + beta])
        elif layer.weights:
            layer.set_weights(source.get_weights())
    apply_speedups(folded)
    return folded


__all__ = [
    "SPEEDUPS",
    "SpeedUps",
    "apply_speedups",
    "fold_batchnorm",
    "speed_up_optimizer",
    "speedups_applied",
    "speedups_enabled",
]
