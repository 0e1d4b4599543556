"""VideoDiT: tubelets, layouts, factorized attention against a naive reference,
adaLN-Zero at init, frame conditioning, time-reversal asymmetry, sharding.

One tiny configuration (shared shapes keep eager compilation cheap).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vdm import sharding
from vdm.models import VideoDiT, param_count, patchify, unpatchify
from vdm.models import dit, layers

D, HEADS, HD, DEPTH = 24, 2, 12, 2
KW = dict(input_size=(4, 4, 6), in_channels=3, out_channels=2, patch_size=(1, 2, 2), hidden=D,
          depth=DEPTH, num_heads=HEADS, cond_dim=8, context_dim=8)
GRID = (4, 2, 3)  # T', H', W'
B = 2


def make(**over):
    return VideoDiT(**{**KW, **over}, rngs=nnx.Rngs(0))


def randomize(module, seed=0, scale=0.2, skip=()):
    """Add noise to every parameter (so zero-initialised layers become live)."""
    rng = np.random.default_rng(seed)
    for path, node in nnx.iter_graph(module):
        if isinstance(node, nnx.Param) and not any(s in ".".join(map(str, path)) for s in skip):
            value = np.asarray(node[...])
            node[...] = jnp.asarray(value + scale * rng.normal(size=value.shape), value.dtype)
    return module


def inputs(seed=0):
    k = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(k[0], (B, 4, 4, 6, 3))
    t = jnp.array([0.25, 0.75])
    cond = jax.random.normal(k[1], (B, 8))
    ctx = jax.random.normal(k[2], (B, 3, 8))
    ctx_mask = jnp.array([[True, True, False], [True, True, True]])
    return x, t, dict(cond=cond, context=ctx, context_mask=ctx_mask)


def forward(model, x, t, kw):
    return model(x, t, **kw)


def rel(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


# --- tubelets ---------------------------------------------------------------------------

@pytest.mark.parametrize("patch", [(1, 1, 1), (1, 2, 2), (2, 4, 4), (4, 2, 1)])
def test_patchify_round_trip(patch):
    x = np.random.default_rng(0).normal(size=(2, 4, 8, 12, 3))
    tok = patchify(x, patch)
    pt, ph, pw = patch
    assert tok.shape == (2, 4 // pt, (8 // ph) * (12 // pw), pt * ph * pw * 3)
    # token (t'=0, y'=0, x'=1) is the tubelet at x in [pw, 2pw)
    np.testing.assert_array_equal(tok[0, 0, 1], x[0, :pt, :ph, pw:2 * pw].reshape(-1))
    np.testing.assert_array_equal(unpatchify(tok, patch, (4, 8, 12)), x)


def test_bad_patch_raises_naming_dims():
    x = np.zeros((1, 4, 8, 6, 3))
    with pytest.raises(ValueError, match=r"W=6 % pw=4"):
        patchify(x, (1, 4, 4))
    with pytest.raises(ValueError, match=r"T=4 % pt=3"):
        patchify(x, (3, 2, 2))
    with pytest.raises(ValueError, match=r"H=4 % ph=3"):
        VideoDiT(**{**KW, "patch_size": (1, 3, 2)}, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="do not match"):
        unpatchify(np.zeros((1, 4, 6, 12)), (1, 2, 2), (4, 8, 8))


# --- layouts, parameter counts, adaLN-Zero --------------------------------------------------

def test_layouts_shapes_zero_init_and_parameter_counts():
    x, t, kw = inputs()
    counts = {}
    for layout in dit.LAYOUTS:
        model = make(layout=layout)
        out = forward(model, x, t, kw)
        assert out.shape == (B, 4, 4, 6, 2)
        assert not np.any(np.asarray(out))  # zero-init final layer
        counts[layout] = param_count(model)

    # every block is the identity at init (all adaLN-Zero gates are zero)
    model = make(layout="sequential")   # space, time, cross-attention and MLP sublayers
    h = jax.random.normal(jax.random.key(1), (B, 4, 6, D))
    c = jax.random.normal(jax.random.key(2), (B, 4, D))
    out = model.blocks[0](h, c, ropes=model.rope_tables(GRID), masks={}, context=kw["context"],
                          context_mask=kw["context_mask"])
    np.testing.assert_array_equal(out, h)

    assert [b.mixers for b in make(layout="interleaved", depth=3).blocks] == [
        ("space",), ("time",), ("space",)]
    assert counts["joint"] == counts["interleaved"]
    self_attention = 4 * D * D + 4 * D + 2 * HD      # qkv + out (+ biases), q/k norm scales
    adaln_share = 3 * (D * D + D)                     # shift, scale, gate rows
    assert counts["sequential"] - counts["joint"] == DEPTH * (self_attention + adaln_share)


# --- factorized attention against a naive reference ------------------------------------

def naive_self_attention(attn, x, pos, mask=None, base=10.0):
    """x [L, D] tokens at positions pos [L, 3]; float64, one token pair at a time for RoPE."""
    x = np.asarray(x, np.float64)
    qkv = np.einsum("ld,dchk->lchk", x, np.asarray(attn.qkv.kernel[...])) + np.asarray(
        attn.qkv.bias[...])
    rms = lambda a, s: a / np.sqrt((a ** 2).mean(-1, keepdims=True) + 1e-6) * np.asarray(s[...])
    q, k, v = rms(qkv[:, 0], attn.q_norm.scale), rms(qkv[:, 1], attn.k_norm.scale), qkv[:, 2]
    split = layers.default_rope_split(q.shape[-1])
    half = q.shape[-1] // 2

    def rotate(a):
        out = a.copy()
        for l, p in enumerate(pos):
            ang = np.concatenate([p[ax] * base ** (-np.arange(0, d, 2) / d)
                                  for ax, d in enumerate(split)])
            c, s = np.cos(ang), np.sin(ang)
            out[l, :, :half] = a[l, :, :half] * c - a[l, :, half:] * s
            out[l, :, half:] = a[l, :, :half] * s + a[l, :, half:] * c
        return out

    q, k = rotate(q), rotate(k)
    scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask[None], scores, -np.inf)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    o = np.einsum("hqk,khd->qhd", p, v)
    return np.einsum("lhk,hkd->ld", o, np.asarray(attn.out.kernel[...])) + np.asarray(
        attn.out.bias[...])


@pytest.mark.parametrize("window", [None, 1])
def test_factorized_attention_matches_naive(window):
    model = make(layout="joint", temporal_window=window)
    attn = randomize(model.blocks[0].attn[0], seed=3)
    T, Hp, Wp = GRID
    S = Hp * Wp
    h = jax.random.normal(jax.random.key(2), (B, T, S, D))
    ropes, masks = model.rope_tables(GRID), model.attention_masks(GRID)
    pos = layers.grid_positions(GRID).reshape(T, S, 3)        # full 3D (t, y, x) of every token
    tband = np.ones((T, T), bool) if window is None else (
        np.abs(np.arange(T)[:, None] - np.arange(T)[None]) <= window)
    hn = np.asarray(h)

    space = dit.attend_space(attn, h, rope=ropes["space"])
    time = dit.attend_time(attn, h, rope=ropes["time"], mask=masks.get("time"))
    joint = dit.attend_joint(attn, h, rope=ropes["joint"], mask=masks.get("joint"))
    for b in range(B):
        for f in range(T):       # spatial: each frame on its own
            np.testing.assert_allclose(space[b, f], naive_self_attention(attn, hn[b, f], pos[f]),
                                       atol=2e-4)
        for s in range(S):       # temporal: each spatial position's time line on its own
            np.testing.assert_allclose(time[b, :, s],
                                       naive_self_attention(attn, hn[b, :, s], pos[:, s], tband),
                                       atol=2e-4)
        full_mask = np.kron(tband, np.ones((S, S), bool))  # token i = (t, s), t-major
        ref = naive_self_attention(attn, hn[b].reshape(T * S, D), pos.reshape(T * S, 3), full_mask)
        np.testing.assert_allclose(joint[b].reshape(T * S, D), ref, atol=2e-4)


# --- frame conditioning and time direction ----------------------------------------------

def test_frame_cond_zero_init_then_per_frame():
    x, t, kw = inputs()
    model = make(layout="sequential")
    c = model.conditioning(t, kw["cond"], 4)
    assert c.shape == (B, 4, D)
    np.testing.assert_array_equal(c, jnp.broadcast_to(c[:, :1], c.shape))  # same every frame

    # With its output layer zero, the model does not depend on FrameCond's other weights.
    randomize(model, seed=1, skip=("frame_cond",))
    out = forward(model, x, t, kw)
    randomize(model.frame_cond, seed=2, skip=("fc2",))
    np.testing.assert_array_equal(forward(model, x, t, kw), out)

    # Live output layer: frames get different modulation, and the output changes.
    randomize(model.frame_cond.fc2, seed=3)
    c = model.conditioning(t, kw["cond"], 4)
    assert float(jnp.abs(c[:, 1:] - c[:, :1]).max()) > 1e-2
    mods = model.blocks[0].modulation(c)                     # [B, T', 3n, D]
    assert float(jnp.abs(mods[:, 1:] - mods[:, :1]).max()) > 1e-2
    assert rel(forward(model, x, t, kw), out) > 1e-3
    # ...and how frames differ depends on the condition
    c2 = model.conditioning(t, kw["cond"] + 1.0, 4)
    assert float(jnp.abs((c2 - c2[:, :1]) - (c - c[:, :1])).max()) > 1e-3


def test_bilinear_frame_cond_can_express_any_label_frame_table():
    """The bilinear form generalises the (label, frame) embedding table of RESEARCH-NOTES:
    with one-hot labels as the condition, W can be solved (least squares, closed form) so
    that the offsets equal an arbitrary random table exactly."""
    labels, frames, rank = 4, 8, 16
    fc = dit.FrameCond(D, labels, form="bilinear", rank=rank, rngs=nnx.Rngs(0))
    assert fc(frames, jnp.ones((B, labels))).shape == (B, frames, D)
    np.testing.assert_array_equal(fc(frames, jnp.ones((B, labels))), 0.0)  # zero at init
    table = np.random.default_rng(0).normal(size=(labels, frames, D))
    fc.cond_proj.kernel.value = jnp.eye(labels, rank)                   # a = onehot(label), padded
    fc.cond_proj.bias.value = jnp.zeros(rank)
    phi = np.asarray(dit.frame_fourier(frames, rank), np.float64)      # [T', r], rank T'
    assert np.linalg.matrix_rank(phi) == frames
    w = np.zeros((rank, rank, D))
    for label in range(labels):
        w[label] = np.linalg.lstsq(phi, table[label], rcond=None)[0]    # phi @ W[l] = table[l]
    fc.table.value = jnp.asarray(w.reshape(rank * rank, D), jnp.float32)
    onehot = jnp.eye(labels)
    np.testing.assert_allclose(fc(frames, onehot), table, atol=1e-4)
    # and it is a bilinear form: the offset is linear in the condition
    mix = jnp.asarray([[0.3, 0.7, 0.0, 0.0]])
    np.testing.assert_allclose(fc(frames, mix)[0], 0.3 * table[0] + 0.7 * table[1], atol=1e-4)


def test_bilinear_frame_cond_in_the_model_and_its_bad_input():
    x, t, kw = inputs()
    model = make(layout="sequential", frame_cond_form="bilinear")
    out = forward(model, x, t, kw)
    randomize(model.frame_cond, seed=2, skip=("table",))  # table zero: no effect yet
    np.testing.assert_array_equal(forward(model, x, t, kw), out)
    randomize(model.frame_cond, seed=3)
    c = model.conditioning(t, kw["cond"], 4)
    assert float(jnp.abs(c[:, 1:] - c[:, :1]).max()) > 1e-2  # frames differ...
    c2 = model.conditioning(t, kw["cond"] + 1.0, 4)
    assert float(jnp.abs((c2 - c2[:, :1]) - (c - c[:, :1])).max()) > 1e-3  # ...by condition
    with pytest.raises(ValueError, match="not one of"):
        dit.FrameCond(D, 4, form="outer", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="needs a condition"):
        dit.FrameCond(D, None, form="bilinear", rngs=nnx.Rngs(0))


def test_rope_breaks_time_reversal_symmetry():
    flip = lambda a: a[:, ::-1]
    # temporal attention alone: RoPE scores depend on the sign of t_i - t_j
    model = make(layout="sequential")
    attn = randomize(model.blocks[0].attn[1], seed=4)
    h = jax.random.normal(jax.random.key(5), (B, 4, 6, D))
    rope = model.rope_tables(GRID)["time"]
    out = dit.attend_time(attn, h, rope=rope)
    assert rel(flip(dit.attend_time(attn, flip(h), rope=rope)), out) > 0.05
    np.testing.assert_allclose(flip(dit.attend_time(attn, flip(h))), dit.attend_time(attn, h),
                               atol=1e-5)  # no positions: exactly equivariant

    # the whole model, RoPE only: reversal changes the output...
    x, t, kw = inputs()
    model = randomize(make(layout="sequential", pos_embed="rope", frame_cond=False), seed=4)
    out = forward(model, x, t, kw)
    assert rel(flip(forward(model, flip(x), t, kw)), out) > 3e-3
    # ...while without positions the model is exactly equivariant to it
    control = randomize(make(layout="sequential", pos_embed="none", frame_cond=False), seed=4)
    out = forward(control, x, t, kw)
    np.testing.assert_allclose(flip(forward(control, flip(x), t, kw)), out, rtol=1e-5, atol=1e-4)


# --- building, jit, gradients, sharding ---------------------------------------------------

def test_eval_shape_builds_abstractly():
    abstract = nnx.eval_shape(lambda: make(layout="interleaved"))
    leaves = jax.tree.leaves(nnx.state(abstract, nnx.Param))
    assert leaves and all(isinstance(a, jax.ShapeDtypeStruct) for a in leaves)
    assert param_count(abstract) == param_count(make(layout="interleaved"))


def test_jit_sharded_forward_and_gradients():
    """One jitted forward + backward, parameters and batch sharded over 8 devices
    (fsdp x sequence x tensor), through every kind of sublayer."""
    mesh = sharding.make_mesh({"fsdp": 2, "sequence": 2, "tensor": 2})
    x, t, kw = inputs()
    model = randomize(make(layout="sequential", depth=1), seed=5)
    target = x[..., :2]
    expected = jnp.mean((model(x, t, **kw) - target) ** 2)

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    shardings = sharding.state_shardings(params, mesh)
    qkv = shardings["blocks"][0]["attn"][0]["qkv"]["kernel"]
    assert qkv.get_value().spec == jax.sharding.PartitionSpec("fsdp", None, "tensor", None)
    params = jax.device_put(params, shardings)
    x = jax.device_put(x, sharding.batch_sharding(mesh, x.ndim))

    @jax.jit
    @jax.value_and_grad
    def loss(params, x):
        out = nnx.merge(graphdef, params, rest)(x, t, **kw)
        return jnp.mean((out - target) ** 2)

    with sharding.use_mesh(mesh):
        value, grads = loss(params, x)
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    flat = jax.tree.leaves(grads)
    assert len(flat) == len(jax.tree.leaves(params))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in flat)
    assert sum(float(jnp.abs(g).sum()) > 0 for g in flat) > 0.9 * len(flat)


def test_input_checks_and_concat_channels():
    x, t, kw = inputs()
    model = make(layout="joint", concat_channels=2)
    concat = jnp.ones(x.shape[:-1] + (2,))
    assert forward(model, x, t, dict(kw, concat=concat)).shape == (B, 4, 4, 6, 2)
    assert model.patch_embed.kernel.shape == (2 * 2 * (3 + 2), D)
    with pytest.raises(ValueError, match="concat"):
        model(x, t, **kw)
    with pytest.raises(ValueError, match="cond"):
        model(x, t, concat=concat, context=kw["context"])
    with pytest.raises(ValueError, match="context"):
        model(x, t, concat=concat, cond=kw["cond"])
    # unconditional: no cond, no text; FrameCond is then a learned per-frame offset
    bare = randomize(make(cond_dim=None, context_dim=None), seed=7)
    assert forward(bare, x, t, {}).shape == (B, 4, 4, 6, 2)
    with pytest.raises(ValueError, match="cond_dim=None"):
        bare(x, t, cond=kw["cond"])
    # compute dtype reaches the layers; parameters stay float32
    half = make(dtype=jnp.bfloat16)
    assert half.blocks[0].attn[0].qkv.dtype == jnp.bfloat16 and half.final.linear.dtype == jnp.bfloat16
    assert {a.dtype for a in jax.tree.leaves(nnx.state(half, nnx.Param))} == {jnp.dtype("float32")}
    with pytest.raises(ValueError, match="layout"):
        make(layout="diagonal")
    with pytest.raises(ValueError, match="pos_embed"):
        make(pos_embed="learned")


def test_conv_head_is_a_3x3_convolution_within_each_frame():
    """ConvHead (im2col + matmul) against lax's convolution, frame by frame, zero padded."""
    head = dit.ConvHead(5, 2, dtype=jnp.float32, rngs=nnx.Rngs(0))
    randomize(head, seed=1)
    x = jax.random.normal(jax.random.key(0), (2, 3, 4, 6, 5))       # [B, T, H, W, F]
    kernel = head.linear.kernel[...].reshape(3, 3, 5, 2)             # [dy, dx, F, C] (HWIO)
    ref = jax.lax.conv_general_dilated(
        x.reshape(6, 4, 6, 5), kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    ref = ref.reshape(2, 3, 4, 6, 2) + head.linear.bias[...]
    np.testing.assert_allclose(head(x), ref, rtol=1e-5, atol=1e-5)


def test_out_conv_starts_at_zero_and_reaches_across_patch_borders():
    x, t, kw = inputs()
    model = make(layout="sequential", out_conv=4)
    # The final linear writes F = 4 features per pixel instead of 2 channels (4 pixels a
    # token), and the head is a [9F, 2] kernel plus bias.
    extra = (D + 1) * 4 * (4 - 2) + 9 * 4 * 2 + 2
    assert param_count(model) - param_count(make(layout="sequential")) == extra
    np.testing.assert_array_equal(forward(model, x, t, kw), 0.0)      # zero-initialised final linear
    randomize(model, seed=4)

    def pixel(tokens_out):  # output at (frame 0, y 1, x 1), the last row/column of patch (0, 0)
        return model.out_conv(unpatchify(tokens_out, model.patch_size, (4, 4, 6)))[:, 0, 1, 1]

    feats = jnp.zeros((B, 4, 6, 2 * 2 * 4))                          # [B, T', S, ph*pw*F]
    grad = jax.grad(lambda f: pixel(f).sum())(feats)                 # [B, T', S, 16]
    touched = np.flatnonzero(np.abs(np.asarray(grad[0, 0])).sum(-1))  # tokens of frame 0
    assert list(touched) == [0, 1, 3, 4]  # its own patch and the three across its borders
    assert float(np.abs(np.asarray(grad[0, 1:])).max()) == 0.0        # nothing from other frames
    with pytest.raises(ValueError, match="out_conv"):
        make(out_conv=-1)
