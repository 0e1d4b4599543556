"""TrainState (parameters, optimizer, EMA, step, RNG) and how a config builds it.

The state is a plain pytree so that one ``jax.jit`` with explicit shardings
owns it. The model's structure (its nnx graphdef) stays outside, static.
"""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from vdm import conditioning, sharding
from vdm.config_check import OPTIMIZERS
from vdm.models.attention_backends import resolve_attention_impl
from vdm.models.denoiser import Denoiser
from vdm.models.dit import VideoDiT
from vdm.models.text import VOCAB_SIZE, TextEncoder
from vdm.train.muon import muon_with_adamw


@flax.struct.dataclass
class TrainState:
    step: jax.Array  # int32 []
    params: Any  # nnx.State of the Denoiser's parameters
    opt_state: Any
    ema: Any  # exponential moving average of params (same structure)
    rng: jax.Array  # uint32 [2]: the run's base key; step keys are fold_in(rng, step)


def video_shape(config: ml_collections.ConfigDict) -> tuple[int, int, int, int]:
    """(T, H, W, C) of the clips the model sees, from the dataset's builder config."""
    from vdm.data import moving_shapes

    spec = moving_shapes.config_spec(config.data.config)
    stored_t = spec["num_frames"]
    t = config.data.num_frames
    if t * config.data.frame_stride > stored_t and not (config.data.frame_stride == 1 and t <= stored_t):
        raise ValueError(
            f"data.num_frames={t} with frame_stride={config.data.frame_stride} needs "
            f"{(t - 1) * config.data.frame_stride + 1} frames; dataset {config.data.config!r} has {stored_t}")
    return t, spec["height"], spec["width"], 3


def build_model(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> Denoiser:
    """Config -> explicit constructor arguments (models know nothing of configs)."""
    names = conditioning.enabled(config.conditions)
    t, h, w, c = video_shape(config)
    m = config.model
    concat = conditioning.concat_layout(names)
    text = None
    if "text" in names:
        text = TextEncoder(vocab_size=VOCAB_SIZE, width=m.text_width, depth=m.text_depth,
                           num_heads=m.text_heads, max_len=config.data.text_max_len, pool=m.text_pool,
                           dtype=jnp.dtype(m.dtype),
                           rngs=rngs)
    dit = VideoDiT(
        input_size=(t, h, w), in_channels=c, out_channels=c, patch_size=tuple(m.patch_size),
        hidden=m.hidden, depth=m.depth, num_heads=m.num_heads, mlp_ratio=m.mlp_ratio,
        layout=m.layout, temporal_window=m.temporal_window or None, pos_embed=m.pos_embed,
        rope_base=m.rope_base, cond_dim=text.pooled_dim if text is not None else None,
        context_dim=m.text_width if text is not None and m.cross_attention else None, frame_cond=m.frame_cond,
        frame_cond_form=m.frame_cond_form,
        concat_channels=sum(ch for _, ch in concat),
        attention_impl=resolve_attention_impl(m.attention_impl, dtype=m.dtype), dtype=jnp.dtype(m.dtype),
        scan_layers=m.scan_layers, remat=m.remat, out_conv=m.out_conv, rngs=rngs)
    return Denoiser(dit, text, concat, clean=conditioning.clean_groups(config.conditions, names))


def make_optimizer(config: ml_collections.ConfigDict) -> tuple[optax.GradientTransformation, optax.Schedule]:
    o = config.optim
    steps = config.train.num_steps
    warmup = min(o.warmup_steps, max(steps - 1, 0))
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=o.lr, warmup_steps=warmup,
        decay_steps=max(steps, warmup + 1), end_value=o.lr * o.end_lr_ratio)
    parts = [optax.clip_by_global_norm(o.clip_norm), _base_optimizer(o, schedule)]
    if o.text_lr_scale != 1.0:  # only then: the optimizer state of every other run keeps its structure
        parts.append(scale_module_updates(TEXT_MODULE, o.text_lr_scale, field="optim.text_lr_scale"))
    return optax.chain(*parts), schedule


def _base_optimizer(o: ml_collections.ConfigDict, schedule: optax.Schedule) -> optax.GradientTransformation:
    name = o.optimizer
    if name == "adamw":
        return optax.adamw(schedule, b1=o.b1, b2=o.b2, weight_decay=o.weight_decay)
    if name == "muon":
        # Hidden matrices by orthogonalised momentum, the rest by this AdamW (vdm/train/muon.py).
        # Updates scaled to an RMS of muon_rms x lr, about AdamW's, so that both share lr,
        # schedule and weight decay (Liu et al. 2025, "Muon is scalable for LLM training").
        return muon_with_adamw(schedule, beta=o.muon_beta, rms=o.muon_rms, weight_decay=o.weight_decay,
                               b1=o.b1, b2=o.b2)
    raise ValueError(f"optim.optimizer={name!r} is not one of {OPTIMIZERS}")


TEXT_MODULE = "text_encoder"  # Denoiser's attribute holding the text encoder


def scale_module_updates(module: str, scale: float, field: str = "scale") -> optax.GradientTransformation:
    """Multiply the final updates of one top-level module's parameters by ``scale``: after
    AdamW, this scales that module's learning rate and its decoupled weight decay alike.
    Stateless, so the moments are those of the unscaled optimizer. ``init`` refuses parameters
    without that module (``field`` names the setting in the error)."""

    def init(params):
        if module not in {_top_key(path) for path, _ in jax.tree_util.tree_leaves_with_path(params)}:
            raise ValueError(f"{field}={scale}: the model has no {module!r} to scale")
        return optax.EmptyState()

    def update(updates, state, params=None):
        del params
        scaled = jax.tree_util.tree_map_with_path(
            lambda path, u: u * scale if _top_key(path) == module else u, updates)
        return scaled, state

    return optax.GradientTransformation(init, update)


def _top_key(path) -> str | None:
    first = path[0] if path else None
    return getattr(first, "key", getattr(first, "name", None))


def split_model(model: nnx.Module):
    """(graphdef, params). Every piece of state of our models is a trained Param."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    leftovers = jax.tree.leaves(rest)
    if leftovers:
        raise TypeError(f"model holds non-Param state {rest}; keep constants out of the state")
    return graphdef, params


def abstract_model(config: ml_collections.ConfigDict):
    """(graphdef, abstract params) without allocating anything."""
    model = nnx.eval_shape(lambda: build_model(config, nnx.Rngs(config.seed)))
    return split_model(model)


def _init_fn(config: ml_collections.ConfigDict, tx: optax.GradientTransformation):
    def init() -> tuple[Any, TrainState]:
        model = build_model(config, nnx.Rngs(config.seed))
        graphdef, params = split_model(model)
        state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                           ema=params, rng=jax.random.key_data(jax.random.key(config.seed)))
        return graphdef, state

    return init


def _abstract(init) -> tuple[Any, TrainState]:
    """(graphdef, abstract state) without allocating: the graphdef is static, only arrays are traced."""
    out = {}

    def arrays():
        out["graphdef"], state = init()
        return state

    abstract = jax.eval_shape(arrays)
    return out["graphdef"], abstract


def create_abstract_state(config: ml_collections.ConfigDict, mesh) -> tuple[Any, TrainState]:
    """(graphdef, state of ShapeDtypeStructs carrying their shardings on ``mesh``): a restore target."""
    tx, _ = make_optimizer(config)
    graphdef, abstract = _abstract(_init_fn(config, tx))
    shardings = state_shardings(abstract, mesh, tx)
    target = jax.tree.map(lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh), abstract, shardings)
    return graphdef, target


def create_state(config: ml_collections.ConfigDict, mesh) -> tuple[Any, TrainState, TrainState]:
    """Initialise the state directly on the mesh: (graphdef, state, state_shardings)."""
    tx, _ = make_optimizer(config)
    init = _init_fn(config, tx)
    graphdef, abstract = _abstract(init)
    shardings = state_shardings(abstract, mesh, tx)
    state = jax.jit(lambda: init()[1], out_shardings=shardings)()
    return graphdef, state, shardings


def state_shardings(abstract: TrainState, mesh, tx: optax.GradientTransformation) -> TrainState:
    """Params, EMA and the optimizer's per-parameter moments follow the rule set; scalars replicate."""
    param_sh = sharding.state_shardings(abstract.params, mesh)
    rep = sharding.replicated(mesh)
    # A partitioned optimizer (optim.optimizer=muon) keeps each part's moments for its own
    # parameters only: the others are MaskedNodes there, and stay so.
    opt_sh = optax.tree_map_params(tx, lambda v, sh: v if isinstance(v, optax.MaskedNode) else sh,
                                   abstract.opt_state, param_sh,
                                   transform_non_params=lambda _: rep,
                                   is_leaf=lambda x: isinstance(x, (nnx.Variable, optax.MaskedNode)))
    return TrainState(step=rep, params=param_sh, opt_state=opt_sh, ema=param_sh, rng=rep)
