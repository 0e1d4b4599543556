"""The moving-shapes text-to-video benchmark run (about an hour on a 2-core CPU).

``:smoke`` is the same pipeline at test size.
"""
from configs.common import base_config, parse_arg


def get_config(arg=None):
    a = parse_arg(arg, smoke=False)
    c = base_config()
    c.data.config = "t2v_32"
    c.data.num_frames = 16
    c.model.patch_size = (1, 4, 4)  # 64 tokens per frame, 1024 per clip
    c.model.hidden = 192
    c.model.depth = 6
    c.model.num_heads = 6
    c.model.layout = "sequential"
    c.train.batch_size = 16
    c.train.num_steps = 6000
    c.train.ckpt_every = 1000
    c.train.log_every = 100
    if a.smoke:
        c.data.config = "smoke"
        c.data.num_frames = 4
        c.model.hidden = 32
        c.model.depth = 2
        c.model.num_heads = 2
        c.model.text_width = 32
        c.model.text_depth = 1
        c.model.text_heads = 2
        c.train.batch_size = 8
        c.train.num_steps = 4
        c.train.ckpt_every = 2
        c.train.log_every = 1
        c.sample.steps = 4
        c.sample.num = 2
        c.eval.num_samples = 4
        c.eval.batch_size = 4
        c.wandb.mode = "disabled"
    return c
