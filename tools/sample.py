"""Sample clips from a trained run: text-to-video, image-to-video, continuation, editing.

    python tools/sample.py --workdir runs/qs --prompt "a red circle moves left" \
        --num 8 --steps 50 --guidance 4 --out samples/red_circle.mp4
    # image-to-video (the image at frame 0; repeat --image for more anchors, e.g. end.png@-1)
    python tools/sample.py --workdir runs/i2v --prompt "..." --image start.png
    # continue the first 4 frames of a clip
    python tools/sample.py --workdir runs/multi --prompt "..." --frames clip.mp4:4
    # edit a clip (a source-conditioned model), guidance per condition
    python tools/sample.py --workdir runs/edit --prompt "make the circle blue" \
        --source clip.mp4 --guidance text=4,source=1.5
    # SDEdit with any text-to-video checkpoint: noise the source to 0.6 and denoise
    python tools/sample.py --workdir runs/qs --prompt "a blue circle moves left" \
        --source clip.mp4 --strength 0.6

Loads the latest checkpoint (EMA weights unless --raw). Writes OUT (mp4),
and the same clips as .gif and a .png grid (frames across, samples down).
"""
import _bootstrap  # noqa: F401

import argparse
import os
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True)
    p.add_argument("--prompt", action="append", default=None,
                   help="text prompt; repeat for several (one is used for all --num samples)")
    p.add_argument("--num", type=int, default=8)
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the config's)")
    p.add_argument("--sampler", default=None, choices=["euler", "heun", "ddim", "ddpm"])
    p.add_argument("--image", action="append", default=None, metavar="PNG[@frame]",
                   help="a given frame (default position 0; -1 = last); repeat for several")
    p.add_argument("--frames", default=None, metavar="VIDEO:k", help="continue the first k frames of VIDEO")
    p.add_argument("--source", default=None, metavar="VIDEO", help="a clip to edit")
    p.add_argument("--strength", type=float, default=1.0,
                   help="SDEdit: noise the source to this level in (0, 1] and denoise (1 = off)")
    p.add_argument("--no-clamp", action="store_true",
                   help="let the model redraw the given frames instead of keeping them exactly")
    p.add_argument("--guidance", default=None,
                   help="a scale for all conditions, or per condition: text=4,source=1.5")
    p.add_argument("--guidance_interval", default=None, metavar="LO,HI",
                   help="guide only at noise levels t in [LO, HI] (default: the config's)")
    p.add_argument("--shift", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    p.add_argument("--raw", action="store_true", help="raw weights instead of EMA")
    p.add_argument("--out", default=None, help="output .mp4 (default: WORKDIR/samples/sample_seedS.mp4)")
    p.add_argument("--scale", type=int, default=4, help="nearest-neighbour upscaling of the written files")
    args = p.parse_args(argv)

    from vdm import condition_inputs
    from vdm.sampling import Generator
    from vdm.video_io import write_samples

    if not os.path.isdir(args.workdir):
        print(f"error: {args.workdir}: no such workdir", file=sys.stderr)
        return 2
    try:
        gen = Generator.from_workdir(args.workdir, step=args.step, use_ema=not args.raw)
        conds = {}
        if args.image:
            conds["image"], conds["image_at"] = condition_inputs.load_images(args.image, gen.video_shape)
        if args.frames:
            conds["frames"] = condition_inputs.load_clip_prefix(args.frames, gen.video_shape)
        if args.source:
            conds["source"] = condition_inputs.load_source(args.source, gen.video_shape)
        interval = None
        if args.guidance_interval is not None:
            interval = args.guidance_interval.split(",")
            if len(interval) != 2:
                raise ValueError(f"--guidance_interval takes LO,HI, got {args.guidance_interval!r}")
        videos = gen.generate(args.prompt, num=args.num, seed=args.seed, steps=args.steps,
                              sampler=args.sampler, guidance=args.guidance, guidance_interval=interval,
                              shift=args.shift,
                              strength=args.strength, clamp=not args.no_clamp, progress=True, **conds)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.out or os.path.join(args.workdir, "samples", f"sample_seed{args.seed}.mp4")
    prefix = out[:-4] if out.endswith(".mp4") else out
    paths = write_samples(prefix, videos, scale=args.scale)
    print(f"step {gen.step}: {len(videos)} clips -> " + ", ".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
