"""Probe a trained run; prints one JSON line.

    python tools/probe.py --workdir runs/quickstart [--step N] [--restore 0.3,0.5,0.7,1]

direction-swap loss gap per noise level ((loss with opposite direction words
- loss with true captions) / loss with true captions; ~0 = the model ignores
direction) and frame-reversal change (~0 = the model is symmetric in time).
--given_first_frame: the swap gap again with each clip's true first frame given
(models with the image condition), as first_frame_given/*: do the words still
matter once the start is known?
--times: the noise levels of the swap gap (default 0.3,0.6,0.8,0.95), up to t = 1,
where the input is all noise and only the conditions can shape the output.
--restore: the restoration probe (vdm/evaluation/restoration.py): test clips noised
to each t and denoised with their captions, scored (shape, identity, direction, colour);
it shows from which noise level a quality is lost.
"""
import _bootstrap  # noqa: F401

import argparse
import json


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True)
    p.add_argument("--num", type=int, default=64, help="test clips")
    p.add_argument("--raw", action="store_true", help="raw weights instead of EMA")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    p.add_argument("--given_first_frame", action="store_true",
                   help="also the swap loss with each clip's first frame given (image models)")
    p.add_argument("--times", default="0.3,0.6,0.8,0.95",
                   help="comma-separated noise levels in [0, 1] for the direction-swap gap")
    p.add_argument("--restore", default="",
                   help="comma-separated noise levels in (0, 1] for the restoration probe (samples; slower)")
    args = p.parse_args(argv)
    try:
        times = [float(x) for x in args.times.split(",") if x.strip()]
        if not times or not all(0.0 <= t <= 1.0 for t in times):
            raise ValueError("each must be in [0, 1]")
    except ValueError as e:
        p.error(f"--times takes comma-separated noise levels in [0, 1], got {args.times!r} ({e})")
    from vdm.evaluation import probes, restoration

    try:  # before the checkpoint is loaded
        strengths = [float(x) for x in args.restore.split(",") if x.strip()]
        restoration.check_strengths(strengths)
    except ValueError as e:
        p.error(f"--restore takes comma-separated noise levels in (0, 1], got {args.restore!r} ({e})")
    from vdm.sampling import Generator

    gen = Generator.from_workdir(args.workdir, step=args.step, use_ema=not args.raw)
    out = {"step": gen.step}
    if "text" in gen.names:
        out.update(probes.direction_swap_loss(gen.graphdef, gen.params, gen.config, num=args.num,
                                              times=times))
        if args.given_first_frame:
            try:
                gaps = probes.direction_swap_loss(gen.graphdef, gen.params, gen.config, num=args.num,
                                                  times=times, given_first_frame=True)
            except ValueError as e:
                p.error(str(e))
            out.update({f"first_frame_given/{k}": v for k, v in gaps.items()})
    out["frame_reversal_change"] = probes.frame_reversal_change(gen.graphdef, gen.params, gen.config,
                                                                num=args.num)
    if strengths:
        try:
            out.update(restoration.restoration_scores(gen, strengths=strengths, num=args.num))
        except ValueError as e:
            p.error(str(e))
    print(json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in out.items()}))


if __name__ == "__main__":
    main()
