"""One model for every condition: text, image anchors, frame masks and source clips.

Text is the target clip's caption (so that it means the same with or without a source);
each visual condition is dropped independently in training, so one checkpoint does
text-to-video, image-to-video, prediction, interpolation and editing. ``:smoke`` is the
test-size pipeline.
"""
from configs.common import parse_arg
from configs.shapes_i2v import small_conditioned


def get_config(arg=None):
    a = parse_arg(arg, smoke=False)
    c = small_conditioned(a.smoke)
    c.conditions.image.enabled = True
    c.conditions.image.anchors = dict(first=0.5, last=0.25, first_last=0.25)
    c.conditions.frames.enabled = True
    c.conditions.source_video.enabled = True
    # Each visual condition is present half the time, so every task is seen in training.
    for name in ("image", "frames", "source_video"):
        c.conditions[name].dropout = 0.5
    c.train.num_steps = 1400
    c.train.ckpt_every = 700
    return c
