"""Cluster-scale moving-shapes text-to-video: 64x64, 32 frames, on 8+ accelerators.

FSDP over all devices by default; pass e.g. ``--config.mesh.data=2
--config.mesh.fsdp=-1`` or add ``tensor``/``sequence`` for larger models or
longer clips. The same code runs it on one CPU (slowly).
"""
from configs.common import base_config


def get_config(arg=None):
    c = base_config()
    c.data.config = "hard_64"
    c.data.num_frames = 32
    c.data.text_max_len = 96
    c.model.patch_size = (1, 4, 4)  # 256 tokens per frame, 8192 per clip
    c.model.hidden = 768
    c.model.depth = 12
    c.model.num_heads = 12
    c.model.layout = "sequential"  # factorized: cost ~linear in frames
    c.model.text_width = 512
    c.model.text_depth = 6
    c.model.text_heads = 8
    c.model.dtype = "bfloat16"
    c.optim.lr = 3e-4
    c.optim.warmup_steps = 2000
    c.train.batch_size = 256
    c.train.num_steps = 200_000
    c.train.ckpt_every = 2000
    c.train.keep_checkpoints = 3
    c.train.sample_every = 5000
    c.train.ema_decay = 0.9999
    c.sample.steps = 50
    c.sample.num = 16
    c.eval.num_samples = 256
    c.mesh.data = 1
    c.mesh.fsdp = -1
    c.wandb.mode = "online"
    return c
