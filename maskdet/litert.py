"""Serving a TFLite network through LiteRT, called like the Keras model it came from, by many threads at once.

One scheme for every network maskdet runs on LiteRT: the classifier (infer.py) and the face finders'
networks (faces.py). An interpreter serves one call at a time, so each call takes one from a pool and
gives it back; sessions classifying or finding faces at once each get their own instead of queueing
behind one lock, and the pool holds no more interpreters than there were callers at once.
"""

from __future__ import annotations

import queue

import numpy as np

from . import config


class LiteModel:
    """A TFLite flatbuffer called like its Keras model: `model(x)` -> the list of its outputs, in the model's
    order. An input of a new shape resizes the interpreter that serves it. Thread-safe.

    traced: the TensorFlow function the network came from, which answers an empty batch instead (LiteRT
    cannot resize to a zero-length input); interpreter: LiteRT's Interpreter class (looked up when not
    given); as_tensors: outputs as TensorFlow tensors (MTCNN's code wants them), else NumPy arrays."""

    def __init__(self, blob: bytes, traced=None, interpreter=None, as_tensors: bool = True):
        if interpreter is None:
            from ai_edge_litert.interpreter import Interpreter as interpreter
        self.blob, self._traced, self._interpreter = blob, traced, interpreter
        self._pool: queue.SimpleQueue = queue.SimpleQueue()
        if as_tensors:
            import tensorflow as tf

            self._wrap = tf.constant  # copies the interpreter's buffer, which its next call overwrites
        else:
            self._wrap = np.copy
        self._pool.put(self._new_interpreter())  # a flatbuffer LiteRT cannot take fails here, not at first use

    def _new_interpreter(self) -> tuple:
        """(an interpreter, the input shape its buffers are allocated for: None until its first call when
        its input is resizable, since the converter's placeholder size may not even fit the network)."""
        interp = self._interpreter(model_content=self.blob, num_threads=config.LITE_THREADS)
        inp = interp.get_input_details()[0]
        if min(inp["shape_signature"]) > 0:  # a fixed input: ready it now
            interp.allocate_tensors()
            return interp, tuple(inp["shape"])
        return interp, None

    def __call__(self, x) -> list:
        x = np.asarray(x, dtype=np.float32)
        if not len(x) and self._traced is not None:  # an empty batch: TensorFlow's answer (and error)
            return self._traced(x)
        try:
            interp, ready_for = self._pool.get_nowait()
        except queue.Empty:  # every interpreter is busy: one more for this caller, kept for the next
            interp, ready_for = self._new_interpreter()
        try:
            inp = interp.get_input_details()[0]
            if ready_for != x.shape:
                ready_for = None  # until the buffers fit this shape
                interp.resize_tensor_input(inp["index"], list(x.shape), strict=False)
                interp.allocate_tensors()
                ready_for = x.shape
            interp.set_tensor(inp["index"], x)
            interp.invoke()
            # the converter names the outputs Identity, Identity_1, ... in the model's order
            outs = sorted(
                interp.get_output_details(),
                key=lambda d: int(n) if (n := d["name"].rpartition("_")[2]).isdigit() else 0,
            )
            return [self._wrap(interp.get_tensor(d["index"])) for d in outs]
        finally:
            self._pool.put((interp, ready_for))
