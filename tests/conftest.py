"""Test set-up: 8 forced host CPU devices, so sharding is tested for real.

This must run before JAX is imported anywhere.
"""
import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("WANDB_MODE", "disabled")

# Many tests build the same small programs (each train() traces its step anew);
# a per-run persistent compilation cache lets them share compiled executables.
import tempfile  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="vdm-jax-cache-"))
# The best CPU matmul peak per machine (vdm/mfu.py) is kept here, not in the user's cache.
os.environ["VDM_CACHE_DIR"] = tempfile.mkdtemp(prefix="vdm-cache-")
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
# Tests compile hundreds of tiny programs, where XLA's optimisation passes cost more than they
# save (about half of a smoke training run's compile). Child processes get the same (launch.py).
jax.config.update("jax_disable_most_optimizations", True)

import pytest  # noqa: E402


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The smoke dataset, built once per module: runs read it, child processes never race to build it."""
    from vdm.data import moving_shapes

    d = str(tmp_path_factory.mktemp("data"))
    moving_shapes.build("smoke", d)
    return d


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One compilation cache for a module's child processes: they compile the same programs."""
    return str(tmp_path_factory.mktemp("jax-cache"))
