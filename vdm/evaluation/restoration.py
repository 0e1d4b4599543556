"""Restoration probe: at which noise level does a model lose what the grounded metrics score?

True test clips are noised to t (SDEdit: the sampler starts from x_t = alpha_t x0 +
sigma_t eps) and denoised with their own captions; the result is scored against their
truth. At t -> 0 every score is that of the true clips (~1); at t = 1 it is ordinary
text-to-video sampling. A score that is already lost from a small t (the shape, say) is a
defect of the model's low-noise denoising, which no change of sampler can repair; one that
holds until t is large is decided where the layout is made, at high noise.
"""
from __future__ import annotations

from typing import Sequence

from vdm.evaluation import grounded, runner

SCORES = ("shape_adherence", "identity_consistency", "direction_adherence", "color_adherence")


def check_strengths(strengths: Sequence[float]) -> None:
    bad = [s for s in strengths if not 0.0 < float(s) <= 1.0]
    if bad:
        raise ValueError(f"restoration noise levels must be in (0, 1], got {bad}")


def restoration_scores(generator, *, strengths: Sequence[float] = (0.3, 0.5, 0.7, 1.0), num: int = 64,
                       seed: int = 0, batch_size: int = 64) -> dict[str, float]:
    """{"restore/<score>@<t>": value} for every strength t in (0, 1] and each of SCORES."""
    check_strengths(strengths)
    if "text" not in generator.names:
        raise ValueError("the restoration probe denoises with the clips' captions; "
                         "this model has no text condition")
    texts, truth, clips = runner.eval_clips(generator.config, num)
    out: dict[str, float] = {}
    for s in map(float, strengths):
        # t = 1 is plain text-to-video (SDEdit from the source noised to 1 would be the same).
        kwargs = (lambda part: dict(source=part["video"], strength=s)) if s < 1.0 else (lambda part: {})
        videos = runner.generate_in_batches(generator, texts, clips, batch_size=batch_size, seed=seed,
                                            kwargs=kwargs)
        scores = grounded.grounded_metrics(videos, truth)
        out.update({f"restore/{k}@{s:g}": float(scores[k]) for k in SCORES})
    return out
