// The one Communicator implementation: a thin typed layer over the addon's communicator handle.
// Both backends share it; only the buffer conversion differs.
import { CudaTensor } from '../cuda/tensor';
import { DeviceBuffer, nativeDeviceBuffer } from './device-memory';
import { collectivesAddon, type NativeBuffer, type NativeComm, type NativeOp } from './native-addon';
import type { Backend, CommBuffer, Communicator, GroupBuilder, GroupOp, ReduceOp, TrafficStats } from './types';

// A DeviceBuffer or a CUDA tensor goes as its handle, anything else as is; the addon rejects what
// its backend cannot take with a message naming the expected type.
function toNativeBuffer(buffer: CommBuffer): NativeBuffer {
  if (buffer instanceof DeviceBuffer) return nativeDeviceBuffer(buffer);
  if (buffer instanceof CudaTensor) return buffer.handle;
  return buffer;
}

function toNativeOp<B extends CommBuffer>(op: GroupOp<B>): NativeOp {
  switch (op.kind) {
    case 'send':
      return { kind: 'send', input: toNativeBuffer(op.buffer), peer: op.peer };
    case 'recv':
      return { kind: 'recv', output: toNativeBuffer(op.buffer), peer: op.peer };
    case 'allReduce':
      return { kind: 'allReduce', input: toNativeBuffer(op.buffer), op: op.op ?? 'sum' };
    case 'allGather':
      return { kind: 'allGather', input: toNativeBuffer(op.input), output: toNativeBuffer(op.output) };
    case 'reduceScatter':
      return { kind: 'reduceScatter', input: toNativeBuffer(op.input), output: toNativeBuffer(op.output), op: op.op ?? 'sum' };
    case 'broadcast':
      return { kind: 'broadcast', input: toNativeBuffer(op.buffer), peer: op.root };
  }
}

class OpListBuilder<B extends CommBuffer> implements GroupBuilder<B> {
  readonly ops: GroupOp<B>[] = [];
  closed = false;

  private add(op: GroupOp<B>): void {
    if (this.closed) throw new Error('group: operations must be added before the group callback returns');
    this.ops.push(op);
  }
  send(buffer: B, peer: number): void {
    this.add({ kind: 'send', buffer, peer });
  }
  recv(buffer: B, peer: number): void {
    this.add({ kind: 'recv', buffer, peer });
  }
  allReduce(buffer: B, op: ReduceOp = 'sum'): void {
    this.add({ kind: 'allReduce', buffer, op });
  }
  allGather(input: B, output: B): void {
    this.add({ kind: 'allGather', input, output });
  }
  reduceScatter(input: B, output: B, op: ReduceOp = 'sum'): void {
    this.add({ kind: 'reduceScatter', input, output, op });
  }
  broadcast(buffer: B, root: number): void {
    this.add({ kind: 'broadcast', buffer, root });
  }
}

export class NativeCommunicator<B extends CommBuffer> implements Communicator<B> {
  readonly backend: Backend;
  readonly rank: number;
  readonly worldSize: number;

  constructor(private readonly handle: NativeComm) {
    const info = collectivesAddon().commInfo(handle);
    this.backend = info.backend;
    this.rank = info.rank;
    this.worldSize = info.worldSize;
  }

  private async run(ops: readonly GroupOp<B>[]): Promise<void> {
    await collectivesAddon().commRun(this.handle, ops.map(toNativeOp));
  }

  allReduce(buffer: B, op: ReduceOp = 'sum'): Promise<void> {
    return this.run([{ kind: 'allReduce', buffer, op }]);
  }
  allGather(input: B, output: B): Promise<void> {
    return this.run([{ kind: 'allGather', input, output }]);
  }
  reduceScatter(input: B, output: B, op: ReduceOp = 'sum'): Promise<void> {
    return this.run([{ kind: 'reduceScatter', input, output, op }]);
  }
  broadcast(buffer: B, root: number): Promise<void> {
    return this.run([{ kind: 'broadcast', buffer, root }]);
  }
  send(buffer: B, peer: number): Promise<void> {
    return this.run([{ kind: 'send', buffer, peer }]);
  }
  recv(buffer: B, peer: number): Promise<void> {
    return this.run([{ kind: 'recv', buffer, peer }]);
  }

  async group(ops: readonly GroupOp<B>[] | ((group: GroupBuilder<B>) => void | Promise<void>)): Promise<void> {
    if (typeof ops !== 'function') return this.run(ops);
    const builder = new OpListBuilder<B>();
    await ops(builder);
    builder.closed = true;
    return this.run(builder.ops);
  }

  async barrier(): Promise<void> {
    await collectivesAddon().commBarrier(this.handle);
  }

  async split(color: number, key: number): Promise<Communicator<B> | null> {
    if (!Number.isInteger(color) || !Number.isInteger(key)) throw new TypeError('split: color and key must be integers');
    const child = await collectivesAddon().commSplit(this.handle, color, key);
    return child === null ? null : new NativeCommunicator<B>(child);
  }

  async destroy(): Promise<void> {
    await collectivesAddon().commDestroy(this.handle);
  }

  trafficStats(): TrafficStats | null {
    return collectivesAddon().commTraffic(this.handle);
  }
}
