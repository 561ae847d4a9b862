// NCCL over the CUDA backend's own tensors: a one-rank communicator (the GPU host has one GPU) runs
// its collectives on f32, bf16 and f16 device tensors on the device's communication stream, ordered
// after the compute stream's work by cudaStreamWait. Skipped, naming why, without a GPU and NCCL.
import { describe, expect, it } from 'vitest';
import { backends, createCommunicator, ncclGetUniqueId } from '../../collectives';
import { CudaTensor, cudaStreamWait, cudaSynchronize } from '../tensor';
import { cudaStatus } from '../testing/compare';

const nccl = backends().find((b) => b.name === 'nccl');
const ready = cudaStatus().available && nccl?.available === true;
const reason = !cudaStatus().available ? cudaStatus().reason : nccl?.reason;
const describeNccl = ready ? describe : describe.skip;

describeNccl(`NCCL collectives on CUDA tensors${ready ? '' : ` (skipped: ${reason})`}`, () => {
  it.each(['f32', 'bf16', 'f16'] as const)('all-reduce, all-gather and broadcast of %s tensors on one rank', async (dtype) => {
    // Creating a tensor first makes the CUDA device, so the communicator uses its communication stream.
    const x = CudaTensor.from(Float32Array.from({ length: 1000 }, (_, i) => (i % 17) - 8), dtype);
    const comm = await createCommunicator({ backend: 'nccl', rank: 0, worldSize: 1, uniqueId: ncclGetUniqueId() });
    try {
      cudaStreamWait('comm', 'compute');
      await comm.allReduce(x, 'sum');
      const out = CudaTensor.empty(1000, dtype);
      await comm.allGather(x, out);
      cudaStreamWait('compute', 'comm');
      cudaSynchronize();
      const want = Array.from({ length: 1000 }, (_, i) => (i % 17) - 8);
      expect([...out.download()]).toEqual(want);
      expect([...x.download()]).toEqual(want);
      const other = dtype === 'f32' ? 'bf16' : 'f32';
      await expect(comm.allGather(x, CudaTensor.empty(1000, other))).rejects.toThrow(/different dtypes/);
    } finally {
      await comm.destroy();
    }
  });
});
