"""Gradient accumulation: k micro-batches give the gradient of the whole batch."""
import jax
import numpy as np
import pytest

from test_mesh_equivalence import host_params, make_batch, mesh_of, tiny_config
from vdm import sharding
from vdm.train import accumulate
from vdm.train.state import create_abstract_state
from vdm.train.step import make_loss_and_grads


def test_micro_batches_are_strided_and_must_divide():
    micro = accumulate.split_micro_batches({"x": np.arange(8)}, 2)["x"]
    # Example i goes to micro-batch i % k: contiguous per-device blocks stay on their device.
    np.testing.assert_array_equal(micro, [[0, 2, 4, 6], [1, 3, 5, 7]])
    with pytest.raises(ValueError, match="batch of 8 does not split into 3 micro-batches"):
        accumulate.split_micro_batches({"x": np.arange(8)}, 3)


def loss_and_grads(accum_steps, mesh, time_importance=False):
    config = tiny_config("sequential")
    config.train.grad_accum_steps = accum_steps
    config.diffusion.time_importance = time_importance
    graphdef, target = create_abstract_state(config, mesh)
    param_sh = jax.tree.map(lambda a: a.sharding, target.params)
    params = jax.device_put(host_params("sequential", False), param_sh)
    batch = {k: jax.device_put(v, sharding.batch_sharding(mesh, v.ndim)) for k, v in make_batch().items()}
    fn = make_loss_and_grads(graphdef, config)

    def run(params, batch, key):
        with sharding.use_mesh(mesh):
            return fn(params, batch, key)

    loss, grads = jax.jit(run)(params, batch, jax.random.key(3))
    return float(loss), jax.device_get(grads)


@pytest.mark.parametrize("time_importance", [False, True])
def test_accumulated_gradient_equals_the_whole_batch_gradient(time_importance):
    mesh = mesh_of((2, 2, 1, 1))   # micro-batches of 4 stay split over data x fsdp = 4 devices
    loss1, grads1 = loss_and_grads(1, mesh, time_importance)
    loss2, grads2 = loss_and_grads(2, mesh, time_importance)
    if time_importance:  # the times are drawn another way: another loss
        assert loss1 != pytest.approx(loss_and_grads(1, mesh)[0], rel=1e-3)
    # The same per-example terms summed in another order: float32 rounding only.
    assert loss2 == pytest.approx(loss1, rel=1e-6)
    for g1, g2 in zip(jax.tree.leaves(grads1), jax.tree.leaves(grads2)):
        np.testing.assert_allclose(g2, g1, rtol=1e-4, atol=1e-5 * float(np.abs(g1).max()))
