"""Every result file is labelled: wiring of provenance into the stages that write results."""

from __future__ import annotations

from facecast.media.images import write_image
from facecast.media.synth import Actor, render_clip
from facecast.media.video import video
from facecast.provenance.c2pa import read_manifest


def _frames(folder, einstein, n=6):
    img, lm = einstein
    for i, f in enumerate(render_clip([Actor(img, lm)], size=(96, 64), n_frames=n).frames):
        write_image(folder / f"{i + 1:05d}.png", f)


def test_video_in_a_workspace_is_signed_with_its_key_and_consent(workspace, einstein):
    from facecast.provenance.consent import add_consent

    rec = add_consent(workspace, "sample", "bundled test photo", "facecast tests", src=True)
    _frames(workspace.merged, einstein)
    video(workspace.merged, workspace.result, fps=12, quiet=True)
    status = read_manifest(workspace.result, ws=workspace)
    assert status.present and status.valid and status.trusted
    assert rec.id in str(status.claims)


def test_video_outside_a_workspace_is_still_signed(tmp_path, einstein):
    _frames(tmp_path / "frames", einstein)
    out = tmp_path / "out.mp4"
    result = video(tmp_path / "frames", out, fps=12, quiet=True)
    assert read_manifest(out).valid
    assert any("labelled" in n for n in result.notes)


def test_mkv_cannot_carry_a_manifest_and_says_so(tmp_path, einstein):
    _frames(tmp_path / "frames", einstein, n=3)
    result = video(tmp_path / "frames", tmp_path / "out.mkv", fps=12, codec="ffv1", quiet=True)
    assert any("watermark" in n for n in result.notes)
    assert not read_manifest(tmp_path / "out.mkv").present


def test_visible_label_burns_into_a_corner_only(tmp_path, einstein):
    from facecast.media.video import frames as split

    _frames(tmp_path / "frames", einstein, n=2)
    video(tmp_path / "frames", tmp_path / "plain.mkv", fps=12, codec="ffv1", quiet=True)
    video(tmp_path / "frames", tmp_path / "label.mkv", fps=12, codec="ffv1", quiet=True, visible_label=True)
    split(tmp_path / "plain.mkv", tmp_path / "p", quiet=True)
    split(tmp_path / "label.mkv", tmp_path / "l", quiet=True)
    from facecast.media.images import read_image

    a, b = read_image(tmp_path / "p" / "00001.png"), read_image(tmp_path / "l" / "00001.png")
    changed = (a != b).any(-1)
    assert changed.any()
    ys, xs = changed.nonzero()
    h, w = changed.shape
    # only one corner region changes
    assert (ys.max() - ys.min()) < h / 2 and (xs.max() - xs.min()) < w * 0.8
