"""Shared pieces of the configs: the argument parser and the base config.

Every config file defines ``get_config(arg)``; ``arg`` is what follows the
colon in ``--config configs/X.py:arg`` (e.g. ``smoke``). Derived values
(resolution, tokens per clip, schedules) are computed in code, never here.
"""
from __future__ import annotations

import ml_collections


def parse_arg(arg: str | None, **defaults):
    """'smoke' or 'smoke,layout=joint' -> dict of defaults updated from the arg.

    A bare word sets the boolean of that name; ``k=v`` sets a value of the
    default's type. Unknown names are errors.
    """
    out = dict(defaults)
    for item in (arg or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, eq, value = item.partition("=")
        if key not in out:
            raise ValueError(f"unknown config argument {key!r}; valid: {sorted(out)}")
        if not eq:
            out[key] = True
        elif isinstance(out[key], bool):
            out[key] = value.lower() in ("1", "true", "yes")
        else:
            out[key] = type(out[key])(value) if out[key] is not None else value
    return ml_collections.ConfigDict(out)


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    c.data.name = "moving_shapes"
    c.data.config = "quickstart"  # the TFDS builder config: resolution, clip length, difficulty
    c.data.data_dir = "data"  # built here on first use
    c.data.num_frames = 8
    c.data.frame_stride = 1
    c.data.text_max_len = 48
    c.data.text_key = "caption"  # what the text condition reads: caption | instruction (edit pairs)

    c.model = ml_collections.ConfigDict()
    c.model.hidden = 128
    c.model.depth = 4
    c.model.num_heads = 4
    c.model.mlp_ratio = 4.0
    c.model.patch_size = (1, 4, 4)
    c.model.layout = "joint"  # joint | sequential | interleaved
    c.model.temporal_window = 0  # 0: full temporal attention; w: |t_i - t_j| <= w
    c.model.pos_embed = "both"  # sincos | rope | both
    c.model.rope_base = 10.0
    c.model.cross_attention = True  # text tokens by cross-attention (pooled text always enters adaLN)
    c.model.frame_cond = True  # per-frame adaLN conditioning from (condition, frame index)
    c.model.frame_cond_form = "mlp"  # mlp | bilinear (condition x frame: a (label, frame) table's general form)
    c.model.attention_impl = ""  # '' (einsum on CPU, else XLA's choice) | xla | cudnn | einsum: vdm/models/attention_backends.py
    c.model.dtype = "float32"  # compute dtype; parameters stay float32
    c.model.scan_layers = False  # blocks as one lax.scan: compile time flat in depth
    c.model.remat = "none"  # none | dots | full: what the backward pass recomputes
    c.model.out_conv = 0  # F > 0: F features per pixel, then a 3x3 conv within the frame (ConvHead)
    c.model.text_width = 128
    c.model.text_depth = 2
    c.model.text_heads = 4
    c.model.text_pool = "mean"  # mean | mean+bag: what of the text enters adaLN (vdm/models/text.py)

    c.conditions = ml_collections.ConfigDict()
    c.conditions.text = ml_collections.ConfigDict(dict(enabled=True, dropout=0.1, guidance=3.0))
    # Given frames (image-to-video anchors): which frames, as a mix of frame_masks strategies.
    # clean: the given frames also enter as clean frames of the clip (t = 0), not only by concat.
    c.conditions.image = ml_collections.ConfigDict(dict(
        enabled=False, dropout=0.1, guidance=1.0, clean=False,
        anchors=ml_collections.ConfigDict(dict(first=1.0))))
    # The general frame mask (prediction, interpolation, in-filling): the training mix.
    c.conditions.frames = ml_collections.ConfigDict(dict(
        enabled=False, dropout=0.1, guidance=1.0, clean=False,
        strategies=ml_collections.ConfigDict(dict(prefix=0.5, first_last=0.25, random=0.25))))
    # A source clip to follow in structure and motion (editing); needs an edit-pair dataset.
    c.conditions.source_video = ml_collections.ConfigDict(dict(enabled=False, dropout=0.1, guidance=1.5))
    c.conditions.drop_all = 0.0  # extra probability of dropping every condition at once

    c.diffusion = ml_collections.ConfigDict()
    c.diffusion.process = "flow"  # flow | vp_cosine
    c.diffusion.prediction = "flow"  # flow | eps | v | x0
    c.diffusion.time_sampling = "logit_normal"  # uniform | logit_normal
    c.diffusion.time_mean = 0.0
    c.diffusion.time_std = 1.0
    c.diffusion.time_shift = 3.0  # toward high noise, where layout and motion are decided
    # Fraction of t drawn U(0, 1) instead (low-noise coverage). Beside weighting "velocity"
    # (1/t^2 for x0) the t < 0.2 draws then carry most of the loss: 0.25 lost direction on the
    # benchmark (experiments/time_sampling).
    c.diffusion.time_uniform_mix = 0.0
    c.diffusion.weighting = "none"  # none | min_snr | velocity (the implied velocity's error)
    # Draw t in proportion to density x weight and weight every example by E[weight]: the same
    # expected loss without rare draws that carry 100x the mean weight (vdm/diffusion/importance.py).
    # On the benchmark it halves the high-noise draws and direction from text fell 0.99 -> 0.48
    # (experiments/time_sampling).
    c.diffusion.time_importance = False

    c.optim = ml_collections.ConfigDict()
    # 2e-3 on the benchmark lost the prompt (colour from text 0.76, direction at chance) and
    # bought no shape (experiments/learning_rate).
    c.optim.lr = 1e-3
    c.optim.optimizer = "adamw"  # adamw | muon (hidden matrices by orthogonalised momentum)
    c.optim.muon_beta = 0.95  # muon: momentum
    c.optim.muon_rms = 0.2  # muon: update RMS as a multiple of lr (about AdamW's, so lr carries over)
    c.optim.warmup_steps = 100
    c.optim.end_lr_ratio = 0.1  # cosine decay to lr * this
    c.optim.b1 = 0.9
    c.optim.b2 = 0.99
    c.optim.weight_decay = 0.01
    c.optim.clip_norm = 1.0
    # The text encoder's step size as a multiple of the DiT's (its lr and decoupled weight
    # decay both scale). At a 2e-3 peak, 0.5 restored the direction words given the first
    # frame (i2v 0.51 -> 0.99) but from text alone lost colour (0.76 -> 0.39)
    # (experiments/learning_rate).
    c.optim.text_lr_scale = 1.0

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 32  # global
    c.train.num_steps = 1000
    c.train.log_every = 50
    c.train.ckpt_every = 500
    c.train.keep_checkpoints = 2
    c.train.sample_every = 0  # 0: only at the end
    c.train.ema_decay = 0.999
    c.train.max_bad_steps = 10  # consecutive non-finite steps (updates skipped) before the run stops
    c.train.grad_accum_steps = 1  # micro-batches per optimizer step (the batch is split, not grown)
    c.train.peak_flops = 0.0  # FLOP/s of the whole mesh for MFU; 0 = known per-device peak or measured (CPU)

    c.sample = ml_collections.ConfigDict()
    c.sample.sampler = "euler"  # euler | heun | ddim | ddpm
    c.sample.steps = 30
    c.sample.shift = 3.0
    c.sample.eta = 0.0
    # Noise levels (lo, hi) where guidance applies; elsewhere the conditional prediction alone
    # (conditioning.guided). (0, 1): everywhere.
    c.sample.guidance_interval = (0.0, 1.0)
    c.sample.num = 8  # clips in the periodic sample grid

    c.eval = ml_collections.ConfigDict()
    c.eval.num_samples = 64  # clips generated for the grounded metrics at the end (0: no evaluation)
    c.eval.batch_size = 64
    c.eval.tasks = ""  # comma-separated subset of t2v,i2v,predict,interpolate,edit; "" = all the model allows
    c.eval.every = 0  # evaluate every N training steps too (0: only at the end)
    c.eval.shots = 0  # > 1: also generate up to 8 prompts with this many seeds (identity across shots)
    c.eval.frechet_features = "random_conv"  # Fréchet distance features: random_conv | X.npz | module:factory | "" (off)

    c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, sequence=1, tensor=1))

    c.wandb = ml_collections.ConfigDict()
    c.wandb.mode = "offline"  # offline | online | disabled
    c.wandb.project = "vdm"
    c.wandb.entity = ""
    c.wandb.group = ""
    return c


def shrink_to_smoke(c: ml_collections.ConfigDict, data_config: str, *, num_steps: int,
                    sample_steps: int) -> ml_collections.ConfigDict:
    """The test size of a config family: 4-frame clips of `data_config`, a tiny model, a few steps."""
    c.data.config = data_config
    c.data.num_frames = 4
    c.model.hidden = 32
    c.model.depth = 2
    c.model.num_heads = 2
    c.model.text_width = 32
    c.model.text_depth = 1
    c.model.text_heads = 2
    c.train.batch_size = 8
    c.train.num_steps = num_steps
    c.train.ckpt_every = 2
    c.train.log_every = 1
    c.sample.steps = sample_steps
    c.sample.num = 2
    c.eval.num_samples = 4
    c.eval.batch_size = 4
    c.wandb.mode = "disabled"
    return c
