"""One video frame: its faces found and classified in one batch (FrameAnalyser), and drawn on it (draw).
A video file's analysis (maskdet/video_analysis.py) and a live camera's (maskdet/camera.py) both go through it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from . import config, faces as face_finder, finders, gallery, images


def _back_camera_blaze():
    """BlazeFace's back-camera model (256 px, faces near and mid-range), as maskdet.faces serves it, or None."""
    try:
        return face_finder.blaze_detector("back")
    except TypeError:  # a faces module with one BlazeFace model, asked for without a name
        return face_finder.blaze_detector()


class FrameAnalyser:
    """Finds the faces in an RGB frame and classifies them in one batch: [{"box", "p_mask", "label",
    "score"}], boxes in pixels of the frame given. Thread-safe as the classifier and finders are."""

    def __init__(self, classifier, finder: str = config.DEFAULT_VIDEO_FINDER):
        if finder not in config.VIDEO_FINDERS:
            raise ValueError(f"finder must be one of {', '.join(config.VIDEO_FINDERS)}, not {finder!r}")
        self.classifier, self.finder = classifier, finder
        self._blaze = _back_camera_blaze() if finder == "fast" else None
        if finder == "fast" and self._blaze is None:
            self.finder = "balanced"  # BlazeFace's wheel missing: MTCNN finds

    def find(self, picture: Image.Image) -> list[tuple[tuple[int, int, int, int], float]]:
        if self.finder == "fast":
            w, h = picture.size
            found = []
            for answer in self._blaze(picture, min_score=finders.BLAZE_MIN_SCORE):
                (x0, y0, x1, y1), score = answer[0], answer[-1]  # (box, [keypoints,] score)
                box = (max(0, round(x0)), max(0, round(y0)), min(w, round(x1)), min(h, round(y1)))
                if box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
                    found.append((box, float(score)))
            return found
        found = face_finder.find_faces(picture, mirrored=self.finder == "thorough")
        return [(tuple(int(v) for v in f.box), float(f.score)) for f in found]

    def __call__(self, rgb: np.ndarray) -> list[dict]:
        picture = Image.fromarray(rgb)
        found = self.find(picture)
        if not found:
            return []
        crops = face_finder.face_crops(picture, [box for box, _ in found])
        probs = self.classifier.probs(np.stack([images.to_array(c) for c in crops]))
        return [
            {
                "box": list(box),
                "p_mask": round(float(p), 4),
                "label": self.classifier.label(float(p)),
                "score": round(score, 3),
            }
            for (box, score), p in zip(found, probs)
        ]


def draw(rgb: np.ndarray, faces: list[dict], note: str | None = None) -> np.ndarray:
    """The frame with each face's box in its label's colour and '#track mask 97%' above it, and a note
    in the top-left corner; the input array is left as it was."""
    picture = Image.fromarray(rgb)
    d = ImageDraw.Draw(picture)
    line = max(2, round(max(picture.size) / 320))
    font = gallery._font(max(11, round(max(picture.size) / 45)))
    for face in faces:
        x0, y0, x1, y1 = face["box"]
        colour = gallery.COLOURS.get(face.get("label"), gallery.UNSURE_COLOUR)
        d.rectangle([x0, y0, x1, y1], outline=colour, width=line)
        text = gallery.label_text(face.get("label"), face.get("p_mask"))
        if face.get("track"):
            text = f"#{face['track']} {text}"
        _label(d, (x0, y0, y1), text, colour, font, line, picture.width)
    if note:
        _label(d, (0, line * 8, 0), note, "#333333", font, line, picture.width)
    return np.asarray(picture)


def _label(d, where, text, colour, font, line, width):
    x0, y0, y1 = where
    tx0, ty0, tx1, ty1 = d.textbbox((0, 0), text, font=font)
    tw, th = tx1 - tx0, ty1 - ty0
    ty = y0 - th - 2 * line if y0 - th - 2 * line >= 0 else y1 + line
    tx = max(0, min(x0, width - tw - 2 * line))
    d.rectangle([tx, ty, tx + tw + 2 * line, ty + th + 2 * line], fill=colour)
    d.text((tx + line - tx0, ty + line - ty0), text, fill="white", font=font)
