"""One process of a multi-process training run on localhost (gloo collectives over CPU devices).

    python tests/distributed_train.py PROCESS_ID NUM_PROCESSES PORT WORKDIR OVERRIDES_JSON [STOP_AFTER]

OVERRIDES_JSON sets fields of the smoke config ({"data.data_dir": ..., "train.num_steps": ...}).
Prints "final_step N" at the end.
"""
import json
import sys

import jax


def main(process_id: int, num_processes: int, port: int, workdir: str, overrides: dict,
         stop_after: int | None) -> None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"localhost:{port}", num_processes=num_processes, process_id=process_id,
                               initialization_timeout=60, heartbeat_timeout_seconds=10)
    from smoke_config import smoke_config
    from vdm.train.loop import train

    config = smoke_config(overrides.pop("data.data_dir"), **overrides)
    out = train(config, workdir, stop_after=stop_after)
    print(f"final_step {out['final_step']}", flush=True)


if __name__ == "__main__":
    pid, n, port, wd, ov = sys.argv[1:6]
    stop = int(sys.argv[6]) if len(sys.argv) > 6 else None
    main(int(pid), int(n), int(port), wd, json.loads(ov), stop)
