"""The few constants maskdet lives by: image size, class names, the default threshold, default folders."""

import os
from pathlib import Path

IMAGE_SIZE = (100, 100)  # height, width of the model input
INPUT_SHAPE = (*IMAGE_SIZE, 3)

# Class order everywhere (tables, confusion matrices, reports). The model's
# sigmoid output is P(CLASS_NAMES[0]), i.e. P(face wears a mask).
CLASS_NAMES = ("with_mask", "without_mask")
POSITIVE_CLASS = CLASS_NAMES[0]
DEFAULT_THRESHOLD = 0.5  # P(mask) at or above it means with_mask
# A face whose P(mask) lies in the middle is labelled UNCERTAIN (shown, counted apart, never the photo's
# verdict): within this share of the room between the threshold and 0 or 1 (0.25-0.75 at threshold 0.5).
UNCERTAIN_SHARE = 0.5
UNCERTAIN = "uncertain"
# The labels in words, as the pages say them.
LABEL_WORDS = {CLASS_NAMES[0]: "with mask", CLASS_NAMES[1]: "without mask", UNCERTAIN: "uncertain"}
MIN_FACE_SIDE = 32  # faces smaller than this (short side, pixels) are too small to classify reliably
# A photo upload's limit: phone photos are 2-12 MB, so 20 MB leaves room for TIFFs and large PNGs while a stray
# upload cannot fill the server's memory. Streamlit's own ceiling, server.maxUploadSize in .streamlit/config.toml
# (which covers the camera too), must say the same: tests/test_app.py checks that it does.
UPLOAD_MAX_MB = 20

# Folder names users give their class folders, compared case-insensitively with
# spaces, dashes and underscores removed.
CLASS_ALIASES = {
    "with_mask": {"withmask", "mask", "masked", "withmasks", "masks", "yes", "1"},
    "without_mask": {"withoutmask", "nomask", "unmasked", "withoutmasks", "nomasks", "no", "0"},
}

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

# Images larger than this many pixels are refused (decompression-bomb guard).
MAX_IMAGE_PIXELS = 50_000_000
# Threads and processes, all sized from this machine's cores here: reading and decoding image files (threads
# for a few, one more than the cores; worker processes from READ_PROCESSES_FROM files on: maskdet.file_readers),
# verifying near-copy pairs (OpenCV and numba, CPU-bound), and each LiteRT interpreter's own.
CPUS = os.cpu_count() or 1
READ_THREADS = min(4, CPUS + 1)
READ_PROCESSES = min(8, CPUS)
READ_PROCESSES_FROM = 1000
VERIFY_THREADS = min(4, CPUS)
LITE_THREADS = CPUS

KAGGLE_DATASET = "muhammadahsan026/facemask-dataset-covid1910k-images-2-folders"

PROJECT_DIR = Path(__file__).resolve().parent.parent
LOCAL_DATA_DIR = PROJECT_DIR / "data"  # the project's own data folder: downloads land here by default
_SHARED_DATA = PROJECT_DIR.parent / "shared" / "datasets" / "facemask-12k"


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else default


DATA_DIR = _env_path("MASKDET_DATA", _SHARED_DATA if _SHARED_DATA.is_dir() else LOCAL_DATA_DIR)
RUNS_DIR = _env_path("MASKDET_RUNS", PROJECT_DIR / "runs")
MODELS_DIR = _env_path("MASKDET_MODELS", PROJECT_DIR / "models")
CACHE_DIR = _env_path("MASKDET_CACHE", PROJECT_DIR / ".cache")
DEFAULT_MODEL = MODELS_DIR / "maskdet.keras"
MODEL_CARD = MODELS_DIR / "maskdet.card.json"

DEFAULT_VAL_FRACTION = 0.2
# The network under the sigmoid: an ImageNet-pretrained backbone (maskdet/backbones.py) or "mobilenet_scratch",
# the seed's MobileNet from random weights. A pretrained backbone sees each 100 px crop resized to this size.
DEFAULT_BACKBONE = "mobilenet_v2"
DEFAULT_INPUT_SIZE = 128
DEFAULT_ALPHA = 0.5  # width of the from-scratch MobileNet
DEFAULT_EPOCHS = 6
DEFAULT_HEAD_EPOCHS = 2  # a pretrained backbone stays frozen this many epochs while the head learns
DEFAULT_BATCH_SIZE = 64
DEFAULT_LEARNING_RATE = 2e-3  # the whole network's, from scratch
# The new head's on a frozen pretrained backbone: 1 epoch on 2,000 images gave 99.0% balanced validation
# accuracy at 5e-3 against 95.0% at 2e-3 (docs/models.md)
DEFAULT_HEAD_LEARNING_RATE = 5e-3
DEFAULT_FINE_TUNE_LEARNING_RATE = 1e-4  # the whole network's once a pretrained backbone is unfrozen

# Videos (maskdet/video.py, video_analysis.py, camera.py; the Video page). A video upload's own limit: 200 MB holds
# about 10 minutes of a phone's 720p clip. The server-wide ceiling, server.maxUploadSize, still caps it (20 MB as
# shipped: about 2 minutes of 720p), so the page offers the smaller of the two and says which.
VIDEO_UPLOAD_MAX_MB = 200
VIDEO_MAX_SECONDS = 15 * 60  # longer clips are refused on the page (the command line takes any length)
VIDEO_MAX_PIXELS = 4096 * 2160  # a frame larger than 4K is refused (decoding one is ~35 MB of memory)
# How faces are found in a frame (maskdet/frame_faces.py), fastest first. "fast": BlazeFace alone (14-29 ms a
# 640x480 frame here; on photos it finds 83% of face-mask-scenes' faces against 94% for the photo finder), the
# default for live and files, the only one that keeps up with a camera; "balanced": the photo finder without
# MTCNN's mirror pass; "thorough": the photo finder as the Classify page runs it. docs/video.md has the figures.
VIDEO_FINDERS = ("fast", "balanced", "thorough")
DEFAULT_VIDEO_FINDER = "fast"
DEFAULT_EVERY = 2  # analyse every 2nd frame of a file: a 25 fps clip gives 12.5 looks a second
