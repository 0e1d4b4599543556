"""The op profile puts each XLA op in the right class and accounts for the program's ops."""
import jax
import jax.numpy as jnp
import pytest

from vdm.op_profile import CLASSES, classify, parse_hlo, profile_ops


def _compiled(fn, *args):
    return jax.jit(fn).lower(*args).compile()


def test_each_kind_of_op_lands_in_its_class():
    """One program per class, each op alone (nothing to fuse with), read from real HLO."""
    x = jnp.ones((64, 64))
    programs = {
        "matmul": lambda a: a @ a,
        "reduction": lambda a: a.sum(0),
        "transcendental": lambda a: jnp.exp(a),
        "data_movement": lambda a: a.T,
        "elementwise": lambda a: a * 3.0 + 1.0,
    }
    for want, fn in programs.items():
        instructions = parse_hlo(_compiled(fn, x).as_text())
        found = {classify(op, text) for _, op, text in instructions.values()
                 if op not in ("parameter", "constant", "tuple", "bitcast")}
        assert want in found, (want, found)
        # nothing heavier is invented: a transpose is not arithmetic, exp is not a matmul
        assert not (found - {want, "data_movement"}), (want, found)


def test_profile_accounts_for_a_matmul_heavy_program():
    a = jax.random.normal(jax.random.key(0), (512, 512))
    compiled = _compiled(lambda a: jnp.tanh(a @ a @ a).sum(), a)
    out = profile_ops(lambda: jax.block_until_ready(compiled(a)), compiled.as_text(), runs=2)
    assert set(out["by_class"]) == set(CLASSES)
    assert sum(out["by_class"].values()) == pytest.approx(1.0, abs=1e-3)
    assert out["op_s"] > 0 and out["ops_seen"] >= 1  # XLA may fuse it all into one op
    # two 512^3 matmuls dwarf one tanh and one sum over 512^2 values
    assert out["matmul_share"] > 0.5, out
    assert out["top_ops"][0]["class"] == "matmul"
    with pytest.raises(ValueError, match="runs >= 1"):
        profile_ops(lambda: None, compiled.as_text(), runs=0)
