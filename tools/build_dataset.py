"""Build a moving_shapes config into a TFDS data dir (no download; seconds).

    python tools/build_dataset.py --config quickstart --data_dir data/
"""
import argparse
import time

from vdm.data import moving_shapes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="quickstart", choices=sorted(moving_shapes.CONFIGS))
    parser.add_argument("--data_dir", required=True, help="TFDS data dir to build into")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    builder = moving_shapes.build(args.config, args.data_dir)
    splits = ", ".join(f"{k}: {v.num_examples}" for k, v in builder.info.splits.items())
    print(f"{builder.name}/{args.config} at {builder.data_dir} ({splits}) "
          f"in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
