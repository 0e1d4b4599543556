"""A workdir whose config.json predates some config fields still resumes, samples and
evaluates: the missing fields are filled with the values that reproduce its behaviour."""
import json
import os

import ml_collections
import pytest

from configs.common import base_config
from smoke_config import smoke_config
from vdm import sharding
from vdm.config_check import leaf_keys
from vdm.config_upgrade import ADDED_FIELDS, fill_added_fields
from vdm.train import checkpoint
from vdm.train.loop import WorkdirConflict, prepare_workdir
from vdm.train.state import create_abstract_state


def saved_before_the_added_fields(config) -> dict:
    """The config as an older version of the code would have saved it."""
    old = json.loads(config.to_json())
    for key in ADDED_FIELDS:
        *parents, last = key.split(".")
        node = old
        for part in parents:
            node = node.get(part, {})  # a group added whole took its later fields with it
        node.pop(last, None)
    return old


def test_every_added_field_is_a_field_of_the_configs():
    keys = set(leaf_keys(base_config()))
    for key, value in ADDED_FIELDS.items():
        leaves = [f"{key}.{k}" for k in leaf_keys(ml_collections.ConfigDict(value))] \
            if isinstance(value, dict) else [key]
        assert set(leaves) <= keys, key


def test_an_old_workdir_reads_and_resumes(tmp_path, data_dir):
    config = smoke_config(data_dir)
    wd = str(tmp_path)
    with open(os.path.join(wd, "config.json"), "w") as f:
        json.dump(saved_before_the_added_fields(config), f)
    restored = checkpoint.restore_config(wd)
    assert json.loads(restored.to_json()) == json.loads(config.to_json())  # smoke uses the old values
    create_abstract_state(restored, sharding.make_mesh({"data": -1}))  # the model builds from it
    prepare_workdir(wd, config, resume=False, overwrite=False)  # the same run: no conflict
    # a real difference is still refused
    with open(os.path.join(wd, "config.json"), "w") as f:
        json.dump(saved_before_the_added_fields(smoke_config(data_dir, **{"model.depth": 3})), f)
    with pytest.raises(WorkdirConflict, match="model.depth"):
        prepare_workdir(wd, config, resume=False, overwrite=False)


def test_fill_only_what_is_missing_and_only_what_the_new_config_has():
    old = {"model": {"remat": "full"}}
    filled = fill_added_fields(old, like={"model": {"remat": "none", "scan_layers": True}})
    assert filled == ["model.scan_layers"] and old == {"model": {"remat": "full", "scan_layers": False}}
    with pytest.raises(ValueError, match="not a group"):
        fill_added_fields({"model": 3})
