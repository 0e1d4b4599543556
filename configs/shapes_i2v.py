"""Image-to-video on 16x16, 8-frame moving shapes: the prompt plus the clip's first frame.

Same data (edit_16's target clips), model and length as shapes_edit and shapes_multitask,
so that their scores compare; `--config.conditions.image.enabled=False` is the text-only
baseline of the same run. ``:smoke`` is the test-size pipeline.
"""
from configs.common import parse_arg
from configs.quickstart import get_config as quickstart


def small_conditioned(smoke: bool):
    """The quickstart model and schedule on edit-pair data (shared by the conditioned configs)."""
    c = quickstart()
    c.data.config = "edit_16"
    c.eval.num_samples = 64
    if smoke:
        c.data.config = "edit_smoke"
        c.data.num_frames = 4
        c.model.hidden = 32
        c.model.depth = 2
        c.model.num_heads = 2
        c.model.text_width = 32
        c.model.text_depth = 1
        c.model.text_heads = 2
        c.train.batch_size = 8
        c.train.num_steps = 2
        c.train.ckpt_every = 2
        c.train.log_every = 1
        c.sample.steps = 3
        c.sample.num = 2
        c.eval.num_samples = 4
        c.eval.batch_size = 4
        c.wandb.mode = "disabled"
    return c


def get_config(arg=None):
    a = parse_arg(arg, smoke=False)
    c = small_conditioned(a.smoke)
    c.conditions.image.enabled = True
    c.conditions.image.anchors = dict(first=1.0)
    return c
