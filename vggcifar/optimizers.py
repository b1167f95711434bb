"""Adam and SGD with the same maths as Keras', each weight updated by one fused kernel.

Keras 3 writes an optimizer's update in generic operations: for Adam, about ten
passes over every weight (subtract, multiply, square, add, square root, divide...),
each reading and writing arrays as large as the weights. The article's model has
33.6 million weights, so on a CPU this bookkeeping costs as much as a good part of
the forward and backward pass. TensorFlow has had one kernel per optimizer for years
(``ResourceApplyAdam``, ``ResourceApplyKerasMomentum``) that does the whole update in
one pass; on this project's 2-core CPU it updates 27.5M weights in about 45 ms where
Keras' own code takes about 150 ms.

The classes below are Keras' ``Adam`` and ``SGD`` with only ``update_step`` replaced;
their settings, variables, saved files and results are those of the originals (to
float rounding). Elsewhere (other backends, AMSGrad, several replicas) they fall back
to Keras' code. Loading a model saved with them needs ``import vggcifar``.
"""

from __future__ import annotations

import keras


def _fused_kernel_applies(optimizer, variable):
    """True where TensorFlow's kernel can update ``variable`` directly."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return (isinstance(variable, tf.Variable) and hasattr(variable, "handle")
            and tf.distribute.get_strategy().num_replicas_in_sync == 1)


@keras.saving.register_keras_serializable(package="vggcifar")
class FusedAdam(keras.optimizers.Adam):
    """Keras' Adam; the update of each weight is TensorFlow's one-pass ``ResourceApplyAdam``.

    Both compute ``m ← β1·m + (1-β1)·g``, ``v ← β2·v + (1-β2)·g²`` and
    ``w ← w - lr·√(1-β2ᵗ)/(1-β1ᵗ) · m / (√v + ε)``.
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or not _fused_kernel_applies(self, variable):
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        dtype = variable.dtype
        index = self._get_variable_index(variable)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].value.handle,
            v=self._velocities[index].value.handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))


@keras.saving.register_keras_serializable(package="vggcifar")
class FusedSGD(keras.optimizers.SGD):
    """Keras' SGD with momentum; the update is TensorFlow's one-pass ``ResourceApplyKerasMomentum``.

    Both compute ``u ← μ·u - lr·g`` and ``w ← w + u`` (Nesterov: ``w ← w + μ·u - lr·g``).
    """

    def update_step(self, gradient, variable, learning_rate):
        if not self.momentum or not _fused_kernel_applies(self, variable):
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        dtype = variable.dtype
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=variable.handle, accum=self.momentums[self._get_variable_index(variable)].value.handle,
            lr=tf.cast(learning_rate, dtype), grad=tf.cast(gradient, dtype),
            momentum=tf.cast(self.momentum, dtype), use_nesterov=self.nesterov)
