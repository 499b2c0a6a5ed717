"""Identity tracks across frames, the kept identity, gap filling and temporal smoothing.

Why this shape: DeepFaceLab writes every face of every frame as `_0`/`_1` and users sort them by hand.
Here each detection joins a track by **position continuity** (centre predicted from the track's last
velocity, gate = 0.6 face sizes, similar scale); **appearance** (dlib's 128-D descriptor, identity.py)
is consulted only where position cannot decide, because it costs ~80 ms per face:
- when a track starts (its first descriptor),
- when a frame is ambiguous (a detection fits several tracks' gates or a track several detections:
  people crossing),
- when a detection fits no gate (re-identify it against every earlier track before opening a new one),
- and once in every REFRESH-frame window per track, so its appearance model follows lighting and pose.
  The windows are aligned to frame numbers (frames 0, 15, 30, ... for a track seen throughout), so
  extraction can compute those descriptors in its workers ahead of tracking (extract._detect_chunk).
Tracks whose mean descriptors are closer than SAME_IDENTITY are one identity. The kept identity is the
one nearest the `--reference` photos, else the one seen in most frames.
Gaps of up to MAX_FILL frames inside the kept identity's run get linearly interpolated landmarks
(marked `interpolated`); `smooth` filters the kept identity's landmarks along time within runs of
consecutive frames: a forward-backward One-Euro filter by default (`one_euro_landmarks`), or a small
Gaussian (sigma 1 frame, `smooth="gaussian"`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from facecast.errors import FacecastError
from facecast.faces.identity import SAME_PERSON_THRESHOLD, descriptor_distance
from facecast.faces.landmarks import interocular

GATE = 0.6  # max centre distance / face size for position matching
MAX_GAP = 12  # frames a track may go unseen and still match by position
REFRESH = 15  # frames between appearance samples of a matched track
SAME_IDENTITY = 0.5  # descriptor distance below which two tracks are one person
MAX_FILL = 10  # longest gap (frames) filled by interpolation
DescriptorFn = Callable[[int, np.ndarray], np.ndarray]  # (frame index, landmarks) -> 128-D


@dataclass
class Obs:
    frame: int
    rect: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray
    manual: bool = False

    @property
    def center(self) -> np.ndarray:
        return self.landmarks.mean(0)

    @property
    def size(self) -> float:
        lo, hi = self.landmarks.min(0), self.landmarks.max(0)
        return float(max(hi - lo))


@dataclass
class Track:
    id: int
    obs: list[Obs] = field(default_factory=list)
    descriptors: list[np.ndarray] = field(default_factory=list)
    last_desc_frame: int = -(10**9)

    @property
    def last(self) -> Obs:
        return self.obs[-1]

    def predict(self, frame: int) -> np.ndarray:
        if len(self.obs) < 2:
            return self.last.center
        a, b = self.obs[-2], self.obs[-1]
        vel = (b.center - a.center) / max(1, b.frame - a.frame)
        return b.center + vel * (frame - b.frame)

    def centroid(self) -> np.ndarray:
        return np.mean(self.descriptors, axis=0)


@dataclass
class KeptFace:
    rect: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray
    identity: int
    interpolated: bool = False
    manual: bool = False


@dataclass
class TrackResult:
    kept: dict[int, KeptFace]  # frame index -> the kept person's face
    kept_identity: int | None
    identities: dict[int, int]  # identity -> frames in which it was seen
    multi_face_frames: list[int]
    descriptors_computed: int


def _gate_cost(track: Track, ob: Obs) -> float | None:
    if ob.frame - track.last.frame > MAX_GAP:
        return None
    size = track.last.size
    ratio = ob.size / max(size, 1e-6)
    dist = float(np.linalg.norm(track.predict(ob.frame) - ob.center)) / max(size, 1e-6)
    if dist > GATE or not (0.6 < ratio < 1.6):
        return None
    return dist


def build_tracks(frames: list[list[Obs]], describe: DescriptorFn) -> tuple[list[Track], int]:
    """Assign every observation to a track (see module docstring). Returns (tracks, descriptors computed)."""
    tracks: list[Track] = []
    computed = 0

    def desc(ob: Obs) -> np.ndarray:
        nonlocal computed
        computed += 1
        return describe(ob.frame, ob.landmarks)

    for dets in frames:
        if not dets:
            continue
        costs = {(i, t.id): c for i, ob in enumerate(dets) for t in tracks if (c := _gate_cost(t, ob)) is not None}
        by_track = {t.id: t for t in tracks}
        det_hits = {i: sum(1 for (d, _) in costs if d == i) for i in range(len(dets))}
        trk_hits: dict[int, int] = {}
        for _, tid in costs:
            trk_hits[tid] = trk_hits.get(tid, 0) + 1
        ambiguous = {i for (i, tid) in costs if det_hits[i] > 1 or trk_hits[tid] > 1}
        cache: dict[int, np.ndarray] = {i: desc(dets[i]) for i in sorted(ambiguous)}
        for (i, tid) in list(costs):
            if i in cache:
                costs[(i, tid)] += 2.0 * descriptor_distance(cache[i], by_track[tid].centroid())
        matched_d: set[int] = set()
        matched_t: set[int] = set()
        for (i, tid), _c in sorted(costs.items(), key=lambda kv: kv[1]):
            if i in matched_d or tid in matched_t:
                continue
            if i in cache and descriptor_distance(cache[i], by_track[tid].centroid()) > SAME_PERSON_THRESHOLD:
                continue  # in an ambiguous spot, never hand a face to a track of someone else
            matched_d.add(i)
            matched_t.add(tid)
            tr = by_track[tid]
            tr.obs.append(dets[i])
            if i in cache:
                tr.descriptors.append(cache[i])
                tr.last_desc_frame = dets[i].frame
            elif dets[i].frame // REFRESH > tr.last_desc_frame // REFRESH:
                tr.descriptors.append(desc(dets[i]))
                tr.last_desc_frame = dets[i].frame
        for i, ob in enumerate(dets):
            if i in matched_d:
                continue
            d = cache[i] if i in cache else desc(ob)
            best, best_dist = None, SAME_PERSON_THRESHOLD
            for tr in tracks:
                if tr.id in matched_t or tr.last.frame >= ob.frame:
                    continue
                dist = descriptor_distance(d, tr.centroid())
                if dist < best_dist:
                    best, best_dist = tr, dist
            if best is None:
                best = Track(id=len(tracks))
                tracks.append(best)
            best.obs.append(ob)
            best.descriptors.append(d)
            best.last_desc_frame = ob.frame
            matched_t.add(best.id)
    return tracks, computed


def group_identities(tracks: list[Track]) -> dict[int, int]:
    """Track id -> identity id; identities numbered by frames seen, most frequent = 0."""
    parent = {t.id: t.id for t in tracks}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a in tracks:
        for b in tracks:
            if a.id < b.id and descriptor_distance(a.centroid(), b.centroid()) < SAME_IDENTITY:
                parent[find(a.id)] = find(b.id)
    frames: dict[int, set[int]] = {}
    for t in tracks:
        frames.setdefault(find(t.id), set()).update(o.frame for o in t.obs)
    order = sorted(frames, key=lambda r: (-len(frames[r]), r))
    rank = {root: n for n, root in enumerate(order)}
    return {t.id: rank[find(t.id)] for t in tracks}


def fill_gaps(kept: dict[int, KeptFace], max_fill: int = MAX_FILL) -> None:
    """Interpolate landmarks and box for frames missing between two kept faces (in place)."""
    frames = sorted(kept)
    for a, b in zip(frames, frames[1:]):
        if 1 < b - a <= max_fill + 1:
            fa, fb = kept[a], kept[b]
            for f in range(a + 1, b):
                w = (f - a) / (b - a)
                rect = tuple((1 - w) * np.asarray(fa.rect) + w * np.asarray(fb.rect))
                kept[f] = KeptFace(rect, 0.0, (1 - w) * fa.landmarks + w * fb.landmarks,  # type: ignore[arg-type]
                                   fa.identity, interpolated=True)


def smooth_landmarks(kept: dict[int, KeptFace], sigma: float = 1.0) -> None:
    """Gaussian smoothing of landmarks along time within runs of consecutive frames (manual ones stay)."""
    radius = max(1, int(round(2 * sigma)))
    weights = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    frames = sorted(kept)
    original = {f: kept[f].landmarks.copy() for f in frames}
    for f in frames:
        if kept[f].manual:
            continue
        acc, total = np.zeros((68, 2)), 0.0
        for k, w in zip(range(-radius, radius + 1), weights):
            if f + k in original:
                acc += w * original[f + k]
                total += w
        kept[f].landmarks = acc / total


ONE_EURO_MIN_CUTOFF = 0.02  # cycles per frame at rest (tuned on takeo clips only; bench/extract.py)
ONE_EURO_BETA = 2.0  # how fast the cutoff opens with speed (speed in inter-ocular distances per frame)
ONE_EURO_D_CUTOFF = 0.25


def _one_euro_pass(seq: np.ndarray, scale: np.ndarray, min_cutoff: float, beta: float) -> np.ndarray:
    """One causal One-Euro pass (Casiez et al., CHI 2012) over frames (T x 68 x 2), one frame = 1 time unit.

    The cutoff is min_cutoff + beta * speed, speed = the face's mean landmark speed in units of its
    inter-ocular distance (`scale` per frame), so the filter is the same for a 55 px and a 500 px face."""
    def alpha(cutoff: float) -> float:
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau)

    out = np.empty_like(seq)
    out[0] = seq[0]
    d_hat = 0.0
    for t in range(1, len(seq)):
        d = float(np.linalg.norm(seq[t] - out[t - 1], axis=1).mean()) / max(scale[t], 1e-6)
        d_hat = d_hat + alpha(ONE_EURO_D_CUTOFF) * (d - d_hat)
        a = alpha(min_cutoff + beta * d_hat)
        out[t] = out[t - 1] + a * (seq[t] - out[t - 1])
    return out


def one_euro_landmarks(kept: dict[int, KeptFace], min_cutoff: float = ONE_EURO_MIN_CUTOFF,
                       beta: float = ONE_EURO_BETA) -> None:
    """Adaptive smoothing along time within runs of consecutive frames of the kept identity (in place).

    A One-Euro filter lets still faces be very still (low cutoff: camera noise and the predictor's
    frame-to-frame wobble are averaged away) while fast motion opens the cutoff (little lag). Run forward
    and backward and averaged, since extraction sees the whole clip: the two lags cancel. Manual frames
    stay as placed and split runs."""
    frames = sorted(f for f in kept if not kept[f].manual)
    runs: list[list[int]] = []
    for f in frames:
        if runs and f == runs[-1][-1] + 1:
            runs[-1].append(f)
        else:
            runs.append([f])
    for run in runs:
        if len(run) < 3:
            continue
        seq = np.stack([np.asarray(kept[f].landmarks, np.float64) for f in run])
        scale = np.array([interocular(p) for p in seq])
        fwd = _one_euro_pass(seq, scale, min_cutoff, beta)
        bwd = _one_euro_pass(seq[::-1], scale[::-1], min_cutoff, beta)[::-1]
        for f, pts in zip(run, (fwd + bwd) / 2):
            kept[f].landmarks = pts


SMOOTHERS = {"gaussian": smooth_landmarks, "one-euro": one_euro_landmarks}
DEFAULT_SMOOTHER = "one-euro"


def choose_identity(tracks: list[Track], ident: dict[int, int], reference: list[np.ndarray] | None) -> int:
    if not tracks:
        raise FacecastError("no face found in any frame: check the frames, or place landmarks with --landmarks FILE.json")
    if not reference:
        return 0
    ref = np.mean(reference, axis=0)
    cents: dict[int, list[np.ndarray]] = {}
    for t in tracks:
        cents.setdefault(ident[t.id], []).extend(t.descriptors)
    dists = {i: descriptor_distance(ref, np.mean(d, axis=0)) for i, d in cents.items()}
    best = min(dists, key=dists.get)  # type: ignore[arg-type]
    if dists[best] > SAME_PERSON_THRESHOLD:
        raise FacecastError(
            f"nobody in these frames matches the --reference photo(s) (closest descriptor distance "
            f"{dists[best]:.2f}, same person is < {SAME_PERSON_THRESHOLD}): use a clearer photo of the person"
        )
    return best


def track_faces(
    frames: list[list[Obs]],
    describe: DescriptorFn,
    reference: list[np.ndarray] | None = None,
    manual: dict[int, Obs] | None = None,
    fill: bool = True,
    smooth: bool | str = False,
) -> TrackResult:
    """Tracks -> identities -> the kept person's face per frame (manual landmarks win in their frame)."""
    manual = manual or {}
    tracks, computed = build_tracks(frames, describe)
    ident = group_identities(tracks)
    if not tracks and not manual:
        choose_identity(tracks, ident, reference)  # raises the "no face" error
    keep = choose_identity(tracks, ident, reference) if tracks else 0
    kept: dict[int, KeptFace] = {}
    seen: dict[int, set[int]] = {}
    for t in tracks:
        seen.setdefault(ident[t.id], set()).update(o.frame for o in t.obs)
        if ident[t.id] != keep:
            continue
        for o in t.obs:
            if o.frame not in kept or o.score > kept[o.frame].score:
                kept[o.frame] = KeptFace(o.rect, o.score, o.landmarks, keep)
    for f, o in manual.items():
        kept[f] = KeptFace(o.rect, 1.0, o.landmarks, keep, manual=True)
    if fill:
        fill_gaps(kept)
    if smooth:
        SMOOTHERS[smooth if isinstance(smooth, str) else DEFAULT_SMOOTHER](kept)
    multi = [i for i, dets in enumerate(frames) if len(dets) > 1]
    return TrackResult(dict(sorted(kept.items())), keep if tracks or manual else None,
                       {i: len(s) for i, s in sorted(seen.items())}, multi, computed)
