"""Quickstart: a tiny text-to-video model on 16x16, 8-frame moving shapes.

Trains, samples and scores in under 10 minutes on a 2-core CPU.
"""
from configs.common import base_config


def get_config(arg=None):
    c = base_config()
    c.data.config = "quickstart"
    c.data.num_frames = 8
    c.model.patch_size = (1, 4, 4)  # 16 tokens per frame, 128 per clip
    c.data.text_max_len = 40
    # Short structured captions: the pooled text through (per-frame) adaLN carries them;
    # cross-attention would cost a third of the step here.
    c.model.cross_attention = False
    c.train.num_steps = 700
    c.train.ckpt_every = 350
    c.train.log_every = 50
    return c
