import jax
import jax.numpy as jnp
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from vdm import sharding


def test_resolve_mesh_shape_fills_the_rest():
    assert sharding.resolve_mesh_shape({"data": -1}, 8) == (8, 1, 1, 1)
    assert sharding.resolve_mesh_shape({"data": 2, "fsdp": -1, "tensor": 2}, 8) == (2, 2, 1, 2)


@pytest.mark.parametrize("sizes, match", [
    ({"data": 3}, "3 devices but 8"),
    ({"data": 3, "fsdp": -1}, "does not divide"),
    ({"data": -1, "fsdp": -1}, "at most one"),
    ({"dta": 8}, "unknown mesh axes"),
    ({"data": 0}, "positive"),
])
def test_bad_mesh_names_the_numbers(sizes, match):
    with pytest.raises(ValueError, match=match):
        sharding.resolve_mesh_shape(sizes, 8)


def test_make_mesh_axes_and_devices():
    mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    assert mesh.axis_names == sharding.MESH_AXES
    assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "sequence": 1, "tensor": 2}
    one = sharding.make_mesh({"data": -1}, devices=jax.devices()[:1])
    assert one.devices.size == 1


def test_logical_to_spec_rules():
    assert sharding.logical_to_spec(("embed", "mlp")) == P("fsdp", "tensor")
    assert sharding.logical_to_spec(("act_batch", "act_frames", "act_space", "act_embed")) == \
        P(("data", "fsdp"), "sequence", None, None)
    # Temporal attention: frames whole, space split over 'sequence'.
    assert sharding.logical_to_spec(("act_batch", "act_frames", "act_space", "act_embed"), "temporal") == \
        P(("data", "fsdp"), None, "sequence", None)
    # A mesh axis is used once per array.
    assert sharding.logical_to_spec(("embed", "embed")) == P("fsdp", None)
    with pytest.raises(KeyError, match="no rule"):
        sharding.logical_to_spec(("nonsense",))


def test_constrain_places_activations_and_is_noop_without_mesh():
    x = jnp.ones((8, 4))
    assert sharding.constrain(x, ("act_batch", "act_embed")) is x
    mesh = sharding.make_mesh({"data": 4, "tensor": 2})
    with sharding.use_mesh(mesh):
        y = jax.jit(lambda a: sharding.constrain(a * 2, ("act_batch", "act_mlp")))(x)
    want = jax.sharding.NamedSharding(mesh, P(("data", "fsdp"), "tensor"))
    assert y.sharding.is_equivalent_to(want, 2)
    with pytest.raises(ValueError, match="2 names"):
        with sharding.use_mesh(mesh):
            sharding.constrain(jnp.ones((2, 2, 2)), ("act_batch", "act_embed"))


def test_state_shardings_follow_annotations():
    layer = nnx.Linear(8, 16, kernel_init=nnx.with_partitioning(nnx.initializers.lecun_normal(),
                                                                ("embed", "mlp")), rngs=nnx.Rngs(0))
    mesh = sharding.make_mesh({"fsdp": 4, "tensor": 2})
    sh = sharding.state_shardings(nnx.state(layer), mesh)
    assert sh["kernel"].get_value().spec == P("fsdp", "tensor")
    assert sh["bias"].get_value().spec == P()
