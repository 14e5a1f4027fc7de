"""Counting people, not frames: faces found in successive frames joined into tracks, one per person.

A face in a new frame continues the track whose last box it overlaps most (IoU), or, when a person moved
further between two analysed frames than their box is wide, whose last box is near and of a like size.
A track that no frame has continued for MAX_GAP_S seconds of video ends. A track becomes a person once it
was seen in MIN_HITS analysed frames (a box that shows up once is more likely a false find than a
passer-by), and its label is its frames' majority; a tie goes by its mean P(mask).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from . import config

# Two boxes overlapping at least this much (IoU) are one face in two frames.
MIN_IOU = 0.3
# Without that overlap, a face still continues a track when its centre lies within this share of the
# track box's side from the track's centre and the two sides differ by less than a factor SIZE_RATIO:
# at 2 analysed frames a second a person walking past a doorway camera moves about half a face.
NEAR_SHARE = 0.6
SIZE_RATIO = 1.6
# A track not continued for this long (seconds of video) has ended: the person left or turned away.
MAX_GAP_S = 1.0
# A track is counted as a person once it was seen in this many analysed frames.
MIN_HITS = 3

MASK, NO_MASK = config.CLASS_NAMES


@dataclass
class Track:
    """One person's face through the video: where it was last, and the labels its frames gave it."""

    id: int
    box: tuple[float, float, float, float]
    first_t: float
    last_t: float
    hits: int = 0
    votes: Counter = field(default_factory=Counter)
    p_sum: float = 0.0

    def add(self, t: float, face: dict) -> None:
        self.box, self.last_t = tuple(face["box"]), t
        self.hits += 1
        self.votes[face["label"]] += 1
        self.p_sum += face["p_mask"]

    @property
    def p_mask(self) -> float:
        """The mean P(mask) of its frames."""
        return self.p_sum / max(self.hits, 1)

    def label(self, threshold: float = config.DEFAULT_THRESHOLD) -> str:
        """Its frames' majority label; a tie goes by the mean P(mask)."""
        if self.votes[MASK] != self.votes[NO_MASK]:
            return MASK if self.votes[MASK] > self.votes[NO_MASK] else NO_MASK
        return MASK if self.p_mask >= threshold else NO_MASK

    def record(self, threshold: float = config.DEFAULT_THRESHOLD) -> dict:
        return {
            "track": self.id,
            "label": self.label(threshold),
            "frames": self.hits,
            "frames_with_mask": self.votes[MASK],
            "frames_without_mask": self.votes[NO_MASK],
            "p_mask": round(self.p_mask, 4),
            "first_s": round(self.first_t, 3),
            "last_s": round(self.last_t, 3),
        }


def iou(a, b) -> float:
    """Intersection over union of two (xmin, ymin, xmax, ymax) boxes."""
    iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    return iw * ih / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih)


def _nearness(track_box, box) -> float:
    """A score below MIN_IOU for a box near a track's box and of a like size, else 0."""
    side_t = max(track_box[2] - track_box[0], track_box[3] - track_box[1], 1e-6)
    side_b = max(box[2] - box[0], box[3] - box[1], 1e-6)
    if max(side_t, side_b) / min(side_t, side_b) > SIZE_RATIO:
        return 0.0
    dx = (box[0] + box[2] - track_box[0] - track_box[2]) / 2
    dy = (box[1] + box[3] - track_box[1] - track_box[3]) / 2
    distance = (dx * dx + dy * dy) ** 0.5 / side_t
    return MIN_IOU * (1 - distance / NEAR_SHARE) if distance < NEAR_SHARE else 0.0


class Tracker:
    """Joins each analysed frame's faces to tracks; `people()` counts each person once."""

    def __init__(
        self, threshold: float = config.DEFAULT_THRESHOLD, max_gap_s: float = MAX_GAP_S, min_hits: int = MIN_HITS
    ):
        self.threshold, self.max_gap_s, self.min_hits = threshold, max_gap_s, min_hits
        self.active: list[Track] = []
        self.ended: list[Track] = []  # only the ones counted as people are kept (memory stays flat)
        self._next_id = 1

    def update(self, t: float, faces: list[dict]) -> list[dict]:
        """The faces of the frame at `t` seconds ({"box", "label", "p_mask"} each), each returned with the
        "track" it continues or starts. Tracks not continued for max_gap_s end here."""
        for track in [tr for tr in self.active if t - tr.last_t > self.max_gap_s]:
            self._end(track)
        pairs = []
        for ti, track in enumerate(self.active):
            for fi, face in enumerate(faces):
                score = iou(track.box, face["box"])
                if score < MIN_IOU:
                    score = _nearness(track.box, face["box"])
                if score > 0:
                    pairs.append((score, ti, fi))
        taken_tracks, assigned = set(), {}
        for _score, ti, fi in sorted(pairs, reverse=True):  # best overlap first, each used once
            if ti not in taken_tracks and fi not in assigned:
                taken_tracks.add(ti)
                assigned[fi] = self.active[ti]
        out = []
        for fi, face in enumerate(faces):
            track = assigned.get(fi)
            if track is None:
                track = Track(self._next_id, tuple(face["box"]), t, t)
                self._next_id += 1
                self.active.append(track)
            track.add(t, face)
            out.append({**face, "track": track.id})
        return out

    def _end(self, track: Track) -> None:
        self.active.remove(track)
        if track.hits >= self.min_hits:
            self.ended.append(track)

    def people(self) -> list[dict]:
        """Every track seen in at least min_hits frames so far (ended or still in view), in order of
        appearance, with its majority label."""
        counted = self.ended + [tr for tr in self.active if tr.hits >= self.min_hits]
        return [tr.record(self.threshold) for tr in sorted(counted, key=lambda tr: tr.id)]

    def counts(self) -> dict:
        """{"people": N, "with_mask": A, "without_mask": B}."""
        labels = Counter(p["label"] for p in self.people())
        return {"people": sum(labels.values()), MASK: labels[MASK], NO_MASK: labels[NO_MASK]}


def people_sentence(counts: dict) -> str:
    """'3 people seen: 2 with mask, 1 without'."""
    n = counts["people"]
    if not n:
        return "no one seen"
    return f"{n} {'person' if n == 1 else 'people'} seen: {counts[MASK]} with mask, {counts[NO_MASK]} without"
