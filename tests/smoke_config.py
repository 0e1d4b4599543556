"""The smoke config (tiny text-to-video model, 4-frame clips) on a given dataset folder."""
from configs import shapes_t2v


def smoke_config(data_dir: str, **overrides):
    """``overrides``: dotted keys, e.g. ``smoke_config(d, **{"train.num_steps": 2})``."""
    c = shapes_t2v.get_config("smoke")
    c.data.data_dir = data_dir
    c.update_from_flattened_dict(overrides)
    return c
