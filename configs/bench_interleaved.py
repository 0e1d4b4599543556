"""The performance benchmark model: interleaved space/time blocks on 16 x 32 x 32 clips.

hidden 128, 4 heads of 32, 2 spatial + 2 temporal blocks (interleaved),
MLP ratio 4, patch (1, 2, 2): 16 frames of 256 tokens; 8 text tokens of
width 64 by cross-attention; fp32, batch 2. Measure it with

    python tools/benchmark.py --config configs/bench_interleaved.py

``:depth=24,scan`` and the like change the knobs benchmarks compare:
layout, depth, scan (scan_layers), remat, dtype.
"""
from configs.common import base_config, parse_arg


def get_config(arg=None):
    a = parse_arg(arg, layout="interleaved", depth=4, scan=False, remat="none", dtype="float32")
    c = base_config()
    c.data.config = "t2v_32"  # 32 x 32 clips of 16 frames (the shapes; benchmarks use synthetic data)
    c.data.num_frames = 16  # other lengths: tools/benchmark.py --frames
    c.data.text_max_len = 8
    c.model.hidden = 128
    c.model.num_heads = 4
    c.model.depth = a.depth
    c.model.mlp_ratio = 4.0
    c.model.patch_size = (1, 2, 2)
    c.model.layout = a.layout
    c.model.cross_attention = True
    c.model.text_width = 64
    c.model.text_heads = 2
    c.model.scan_layers = a.scan
    c.model.remat = a.remat
    c.model.dtype = a.dtype
    c.train.batch_size = 2
    c.sample.sampler = "euler"
    c.sample.steps = 50
    c.sample.num = 1
    c.wandb.mode = "disabled"
    return c
