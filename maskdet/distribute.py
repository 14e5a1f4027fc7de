"""Training on more than one device or machine, with tf.distribute's own strategies: which strategy a run
uses, which process writes the run folder, and a work-around that lets Keras fit under several workers."""

from __future__ import annotations

import json
import os


def choose_strategy():
    """One device by default; all local GPUs when there are several; many machines with TF_CONFIG."""
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def allow_multi_worker_fit(model, strategy) -> None:
    """Keras 3.15's fit() fails under MultiWorkerMirroredStrategy (keras-team/keras#20585, open):
    it averages the per-worker data batch and the scalar step metrics along an axis they lack.
    Metrics are already synchronised across workers, so the local value is the right one; and the
    model, built under the strategy's scope, needs no symbolic build from a data batch."""
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    original = getattr(tf_trainer.reduce_per_replica, "__wrapped__", tf_trainer.reduce_per_replica)

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(
                lambda v: strategy.experimental_local_results(v)[0] if tf_trainer._is_per_replica_instance(v) else v,
                values,
            )
        return original(values, strategy, reduction)

    reduce_per_replica.__wrapped__ = original
    tf_trainer.reduce_per_replica = reduce_per_replica
    model._distribute_strategy = None  # fit() then runs under the scope entered around it


def is_chief() -> bool:
    """Whether this process writes the run folder (the only one, unless TF_CONFIG says otherwise)."""
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = tf_config.get("task", {})
    return task.get("type", "chief") == "chief" or (
        task.get("type") == "worker" and task.get("index", 0) == 0 and "chief" not in tf_config.get("cluster", {})
    )
