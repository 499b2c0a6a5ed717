"""detect.FaceFollower: followed faces agree with whole-frame detection, cost fewer full placements, and
the faces found are exactly detect_faces' (gone, coming in, coming back from behind another)."""

from __future__ import annotations

import numpy as np

from facecast.faces.detect import FaceFollower, detect_faces
from facecast.faces.landmarks import nme
from facecast.media.synth import Actor, render_clip, sample_photo, two_person_clip


def test_followed_faces_match_detection_and_cost_fewer_full_placements():
    img, lm = sample_photo("takeo")
    clip = render_clip([Actor(img, lm, start=(0.45, 0.5), end=(0.55, 0.5), face_px=(90, 95))], size=(320, 240), n_frames=12)
    follower = FaceFollower(0.5, redetect_every=5)
    for frame, truth in zip(clip.frames, clip.landmarks):
        faces = follower(frame)
        assert len(faces) == 1
        assert nme(faces[0].landmarks, truth[0]) < 0.06
        assert nme(faces[0].landmarks, detect_faces(frame)[0].landmarks) < 0.04
    assert follower.followed_faces >= 8 and follower.placed_faces <= 4


def test_a_vanished_face_is_not_followed_onto_the_background():
    img, lm = sample_photo("takeo")
    clip = render_clip([Actor(img, lm, face_px=(90, 90))], size=(320, 240), n_frames=8, blank_frames=(3, 4))
    follower = FaceFollower(0.5, redetect_every=50)
    found = [len(follower(f)) for f in clip.frames]
    assert found == [1, 1, 1, 0, 0, 1, 1, 1]


def test_a_face_coming_back_from_behind_another_is_found_in_the_same_frame():
    clip = two_person_clip(n_frames=12)
    follower = FaceFollower(0.5, redetect_every=50)
    counts = [len(follower(f)) for f in clip.frames]
    assert counts == [len(detect_faces(f)) for f in clip.frames]
    assert counts[0] == 2 and 1 in counts and counts[-1] == 2
