"""Run `rewardkit <argv>` in a process launched with an FSDP config, sharding on the CPU.

    accelerate launch --config_file FSDP_CPU.yaml tests/distributed/fsdp_cpu_cli.py train ...

Accelerate (1.15) shards only on accelerators: with `use_cpu` its state becomes MULTI_CPU, i.e. DDP over gloo,
whatever the config says (`accelerate.state.AcceleratorState` sets FSDP only for MULTI_GPU-like types). torch's
FSDP2 itself runs on the CPU over gloo, so this script sets, right after rewardkit builds its Accelerator, the two
things Accelerate would have set on GPUs: the distributed type FSDP and the plugin (read, as Accelerate does, from the
launcher's FSDP_* variables). Everything after that is Accelerate's and torch's own FSDP2 code: `prepare` shards the
model with `fully_shard`, `save_state` / `load_state` write and read sharded weights and optimizer states,
`get_state_dict` gathers the full weights.
"""

from __future__ import annotations

import sys

from accelerate import Accelerator, PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

import rewardkit.training.trainer as trainer
from rewardkit.cli import main
from rewardkit.distributed import build_accelerator


def build_fsdp_accelerator(config) -> Accelerator:
    accelerator = build_accelerator(config)
    accelerator.state.fsdp_plugin = FullyShardedDataParallelPlugin()
    accelerator.state.distributed_type = DistributedType.FSDP
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP  # as AcceleratorState.__init__ does
    return accelerator


if __name__ == "__main__":
    trainer.build_accelerator = build_fsdp_accelerator
    raise SystemExit(main(sys.argv[1:]))
