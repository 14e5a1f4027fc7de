"""Pixels for training: every image decoded once into memory (cached on disk by content), and the
`tf.data` pipeline over them with the training augmentation (TensorFlow imported only when used)."""

from __future__ import annotations

import hashlib
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from . import config, files, images


def load_pixels(table: pd.DataFrame, use_cache: bool = True, progress=None) -> np.ndarray:
    """Decode every row once into an (N, H, W, 3) uint8 array, cached on disk by content."""
    key = hashlib.sha1(("|".join(table["hash"].astype(str)) + str(config.IMAGE_SIZE)).encode()).hexdigest()[:20]
    cache_path = config.CACHE_DIR / f"pixels-{key}.npy"
    if use_cache and cache_path.exists():
        try:
            arr = np.load(cache_path)
            if arr.shape[0] == len(table):
                return arr
        except Exception:
            pass
    out = np.zeros((len(table), *config.INPUT_SHAPE), np.uint8)

    def load(i_path):
        i, path = i_path
        out[i] = images.to_array(images.open_image(path))

    with ThreadPoolExecutor(max_workers=config.READ_THREADS) as pool:
        for n, _ in enumerate(pool.map(load, enumerate(table["path"]))):
            if progress and (n % 500 == 0 or n == len(table) - 1):
                progress(n + 1, len(table))
    if use_cache:
        config.CACHE_DIR.mkdir(parents=True, exist_ok=True)
        files.save_npy_atomic(cache_path, out)
    return out


CONTEXT_SHARE = 0.5  # share of training faces shown among other faces instead of mirrored copies of themselves
MAX_ZOOM_OUT = 1.7  # a found face is cut with a margin: up to 0.35 of its side on each side shows its surroundings


def _with_surroundings(images):
    """Each face in the middle of a 3x3 mosaic: its mirror images around it (what reflect-padding shows) or,
    for CONTEXT_SHARE of them, other faces of the batch, as neighbours in a crowd stand beside a face cut out
    with a margin. The label stays the middle face's, so the model learns to judge the face in the centre."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    lr, ud, both = tf.reverse(images, [2]), tf.reverse(images, [1]), tf.reverse(images, [1, 2])
    others = tf.random.uniform([n, 1, 1, 1]) < CONTEXT_SHARE

    def beside(k, own):
        return tf.where(others, tf.roll(images, k, axis=0), own)

    rows = [
        [beside(1, both), beside(2, ud), beside(3, both)],
        [beside(4, lr), images, beside(5, lr)],
        [beside(6, both), beside(7, ud), beside(8, both)],
    ]
    return tf.concat([tf.concat(row, axis=2) for row in rows], axis=1)


def _geometric_augment(images):
    """Random flip, rotation (+-20 deg), zoom (-15% to +70% more surroundings) and shift (+-8%) per image, as
    ONE projective transform of the face amid its surroundings (_with_surroundings): four separate Keras
    layers cost four resamplings and ran 4x slower here."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    h, w = (float(v) for v in config.IMAGE_SIZE)
    mosaic = _with_surroundings(images)
    theta = tf.random.uniform([n], -0.06, 0.06) * 2 * math.pi
    # >1 shows more of the surroundings: found faces are cut with a margin, training crops are tight
    scale = tf.exp(tf.random.uniform([n], -math.log(1.15), math.log(MAX_ZOOM_OUT)))
    flip = tf.where(tf.random.uniform([n]) < 0.5, -1.0, 1.0)
    tx, ty = tf.random.uniform([n], -0.08, 0.08) * w, tf.random.uniform([n], -0.08, 0.08) * h
    cx, cy = (w - 1) / 2, (h - 1) / 2
    a0, a1 = flip * scale * tf.cos(theta), -scale * tf.sin(theta)
    b0, b1 = flip * scale * tf.sin(theta), scale * tf.cos(theta)
    a2 = cx + w - a0 * cx - a1 * cy + tx  # the middle tile of the mosaic starts at (w, h)
    b2 = cy + h - b0 * cx - b1 * cy + ty
    zeros = tf.zeros([n])
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)  # output -> input coordinates
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=mosaic,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )


def _colour_augment(images):
    """Per-image brightness, contrast and saturation jitter."""
    import tensorflow as tf

    n = tf.shape(images)[0]
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    contrast = tf.random.uniform([n, 1, 1, 1], 0.7, 1.3)
    brightness = tf.random.uniform([n, 1, 1, 1], -40.0, 40.0)
    grey = tf.reduce_mean(images, axis=3, keepdims=True)
    saturation = tf.random.uniform([n, 1, 1, 1], 0.6, 1.4)
    images = grey + (images - grey) * saturation
    return (images - mean) * contrast + mean + brightness


def _quality_augment(images):
    """Randomly degrade image quality (down- then up-scaling, pixelation, JPEG artefacts) so the
    model cannot tell the classes apart by how sharp or clean their photos are."""
    import tensorflow as tf

    h, w = config.IMAGE_SIZE
    n = tf.shape(images)[0]
    side = tf.random.uniform([], 16, h + 1, dtype=tf.int32)
    small = tf.image.resize(images, [side, side], method="area")
    blurry = tf.cond(
        tf.random.uniform([]) < 0.5,
        lambda: tf.image.resize(small, [h, w], method="bilinear"),
        lambda: tf.image.resize(small, [h, w], method="nearest"),
    )
    images = tf.where(tf.random.uniform([n, 1, 1, 1]) < 0.5, blurry, images)
    # JPEG re-compression of the first ~30% of the (shuffled) batch: per-image work, so on a share only
    k = n * 3 // 10
    quality = tf.random.uniform([], 15, 90, dtype=tf.int32)
    jpegged = tf.map_fn(
        lambda im: tf.image.adjust_jpeg_quality(im / 255.0, quality) * 255.0,
        tf.clip_by_value(images[:k], 0, 255),  # k is 0 for batches under 4 images
        fn_output_signature=tf.TensorSpec([h, w, 3], tf.float32),
    )
    return tf.concat([jpegged, images[k:]], axis=0)


def augment_batch(images):
    """The training augmentation: geometry, colour, then image quality; float 0-255 in and out."""
    import tensorflow as tf

    return tf.clip_by_value(_quality_augment(_colour_augment(_geometric_augment(images))), 0.0, 255.0)


def make_dataset(
    pixels: np.ndarray, labels: np.ndarray, batch_size: int, training: bool, augment: bool = True, seed: int = 0
):
    """In-memory uint8 pixels -> a batched tf.data pipeline (shuffle, augment, prefetch)."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((pixels, labels.astype(np.float32)))
    if training:
        ds = ds.shuffle(len(pixels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y))
    if training and augment:
        ds = ds.map(lambda x, y: (augment_batch(x), y), num_parallel_calls=2)
    ds = ds.prefetch(2)
    options = tf.data.Options()
    options.autotune.enabled = False  # autotune stalls every epoch on this 2-core CPU
    return ds.with_options(options)
