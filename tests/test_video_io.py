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
