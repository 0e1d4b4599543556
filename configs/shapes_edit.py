"""Video editing on 16x16, 8-frame moving shapes: a source clip plus an instruction
("make the circle blue", "turn the square into a triangle", "change the background to a
gradient"); the target keeps the source's trajectories.

The source enters by channel concat with its own dropout and guidance scale, so that
"how much to follow the source" and "how much to follow the text" are set separately
at sampling time (``--guidance text=3,source_video=1.5``). ``:smoke`` is test size.
"""
from configs.common import parse_arg
from configs.shapes_i2v import small_conditioned


def get_config(arg=None):
    a = parse_arg(arg, smoke=False)
    c = small_conditioned(a.smoke)
    c.data.text_key = "instruction"
    c.conditions.source_video.enabled = True
    # Instructions are short; the pooled text through adaLN says what to change.
    return c
