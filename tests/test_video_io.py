import numpy as np
import pytest

from vdm import video_io


def test_grid_puts_frames_across_and_samples_down():
    v = np.zeros((2, 3, 4, 5, 3), np.uint8)
    for i in range(2):
        for j in range(3):
            v[i, j] = 10 * i + j + 1
    g = video_io.grid(v, pad=1)
    assert g.shape == (2 * 5 + 1, 3 * 6 + 1, 3)
    assert g[1, 1, 0] == 1 and g[1, 1 + 6 * 2, 0] == 3  # first sample, frames 0 and 2
    assert g[1 + 5, 1 + 6, 0] == 12  # second sample, frame 1


def test_to_uint8_range():
    assert video_io.to_uint8(np.array([-2.0, -1.0, 0.0, 1.0, 3.0])).tolist() == [0, 0, 128, 255, 255]


def test_write_and_read_back(tmp_path):
    videos = np.zeros((2, 4, 8, 8, 3), np.uint8)
    for t in range(4):  # moving, so that no two frames are equal (gif would merge them)
        videos[0, t, 2:6, t:t + 4] = (255, 0, 0)
        videos[1, t, t:t + 4, 3:7] = (0, 0, 255)
    paths = video_io.write_samples(str(tmp_path / "s"), videos, scale=2)
    assert [p[-3:] for p in paths] == ["mp4", "gif", "png"]
    back = video_io.read_video(paths[0])
    assert back.shape[0] == 4
    # mp4 is lossy: the red square is still red at its centre.
    assert back[0, 2 * 4, 2 * 2, 0] > 150 and back[0, 2 * 4, 2 * 2, 2] < 100
    gif = video_io.read_video(paths[1])
    assert gif.shape[0] == 4


def test_read_bad_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        video_io.read_video(str(tmp_path / "nope.mp4"))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.mp4: empty"):
        video_io.read_video(str(empty))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises(ValueError, match="junk.mp4: cannot decode"):
        video_io.read_video(str(junk))


def _moving(t=6, size=16):
    video = np.zeros((t, size, size, 3), np.uint8)
    for i in range(t):
        video[i, 4:10, i:i + 6] = (255, 0, 0)
    return video


@pytest.fixture
def media(tmp_path):
    """Good and broken files of each kind: {name: path}."""
    video = _moving()
    files = {}
    for ext in ("mp4", "gif"):
        good = tmp_path / f"good.{ext}"
        (video_io.write_mp4 if ext == "mp4" else video_io.write_gif)(str(good), video)
        data = good.read_bytes()
        files[f"good.{ext}"] = good
        (tmp_path / f"truncated.{ext}").write_bytes(data[: len(data) * 6 // 10])
        files[f"truncated.{ext}"] = tmp_path / f"truncated.{ext}"
    video_io.write_png(str(tmp_path / "good.png"), video[0])
    png = (tmp_path / "good.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(png[: len(png) // 2])
    (tmp_path / "corrupt.gif").write_bytes(b"GIF89a" + bytes(range(256)) * 8)
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 300)
    (tmp_path / "empty.gif").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a video")
    (tmp_path / "folder.mp4").mkdir()
    video_io.write_gif(str(tmp_path / "short.gif"), video[:2])
    for name in ("good.png", "truncated.png", "corrupt.gif", "corrupt.png", "empty.gif", "notes.txt",
                 "folder.mp4", "short.gif"):
        files[name] = tmp_path / name
    return {k: str(v) for k, v in files.items()}


BAD_VIDEOS = {
    "truncated.mp4": "truncated.mp4: cannot decode",
    "truncated.gif": "truncated.gif: cannot decode",
    "corrupt.gif": "corrupt.gif: cannot decode",
    "empty.gif": "empty.gif: empty file",
    "notes.txt": "notes.txt: unsupported format '.txt'",
    "folder.mp4": "folder.mp4: not a regular file",
    "short.gif": "short.gif: 2 frames, fewer than the 4 needed",
}


@pytest.mark.parametrize("name", sorted(BAD_VIDEOS))
def test_bad_video_names_file_and_problem(media, name):
    with pytest.raises(video_io.BadMediaFile, match=BAD_VIDEOS[name]):
        video_io.read_video(media[name], min_frames=4)


def test_images_good_and_bad(media):
    image = video_io.read_image(media["good.png"])
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8 and image[5, 2, 0] == 255
    for name, problem in [("truncated.png", "cannot decode"), ("corrupt.png", "cannot decode"),
                          ("good.mp4", "unsupported format '.mp4'")]:
        with pytest.raises(video_io.BadMediaFile, match=f"{name}: {problem}"):
            video_io.read_image(media[name])


def test_decode_never_hangs(media, monkeypatch):
    release = __import__("threading").Event()
    monkeypatch.setattr(video_io.imageio, "mimread", lambda *a, **k: release.wait())  # a decoder that never returns
    try:
        with pytest.raises(video_io.BadMediaFile, match="good.gif: decoding did not finish within 0.2 s"):
            video_io.read_video(media["good.gif"], timeout_s=0.2)
    finally:
        release.set()


def test_read_many_skips_bad_files_with_a_message_each(media, capsys):
    names = ["good.mp4", "truncated.mp4", "good.gif", "empty.gif", "short.gif"]
    videos, problems = video_io.read_videos([media[n] for n in names], min_frames=4, skip_bad=True)
    assert [v.shape[0] for v in videos] == [6, 6]
    assert len(problems) == 3
    err = capsys.readouterr().err
    assert "skipped 3 of 5 videos" in err
    for name in ("truncated.mp4", "empty.gif", "short.gif"):
        assert f"skipped: {media[name]}:" in err
    with pytest.raises(video_io.BadMediaFile, match="truncated.mp4"):
        video_io.read_videos([media[n] for n in names], min_frames=4)
