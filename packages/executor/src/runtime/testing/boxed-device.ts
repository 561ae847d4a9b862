// Test helper: a device whose float tensors are opaque boxes around host arrays, with kernels and
// collectives that unbox them. The runtime can only reach a box's values through the Device (and
// the communicator), exactly as with GPU tensors, so a run on it that gives bit for bit the CPU
// device's results shows that no runtime path indexes, copies or fills a tensor behind the
// device's back: a Box is an empty Float32Array to anything else (indexing reads undefined,
// set() of its values throws, fill() does nothing). Its kind is 'cuda' so that the runtime takes
// its non-CPU paths (a separate kernel batch for offloaded host arrays); it runs the CPU kernels.
// With computeDtype 'bf16' it stores both tensor classes in fp32 all the same, and gives AdamW the
// CUDA kernel's `copy` output (the updated master copied into the compute weights): the runtime's
// mixed-precision path then runs exactly, and must give the fp32 results bit for bit.
import type { ComputeDtype } from '../../device/device';
import { type Communicator, type GroupBuilder, type GroupOp, KernelBatch, KernelOps, type ReduceOp } from '@mist/native';
import type { Device, DeviceBatch } from '../../device/device';

/** A tensor of the boxed device: its values live in `data`; to every other reader it is empty. */
export class Box extends Float32Array {
  static get [Symbol.species](): Float32ArrayConstructor {
    return Float32Array;
  }

  constructor(readonly data: Float32Array, readonly whole: boolean) {
    super(0);
    // The logical element count (TensorLike.length); the typed array itself stays empty.
    Object.defineProperty(this, 'length', { value: data.length });
  }
}

const unbox = <T>(b: T): T | Float32Array => (b instanceof Box ? b.data : b);

/** A KernelBatch that takes calls from outside (BoxedBatch forwards its unboxed calls here). */
class ForwardBatch extends KernelBatch {
  push(op: string, buffers: Array<Float32Array | Int32Array | null>, ints: number[], floats: number[]): void {
    this.emit(op, buffers, ints, floats);
  }
}

class BoxedBatch extends KernelOps<Box, Int32Array> implements DeviceBatch<Box, Int32Array> {
  private readonly inner = new ForwardBatch();

  protected override emit(op: string, buffers: Array<Box | Int32Array | null>, ints: number[], floats: number[]): void {
    const bufs = buffers.map((b) => unbox(b));
    if (op === 'adamw' && bufs.length === 5) {
      // Mixed precision: param is the master, the fifth buffer receives its (here exact) copy.
      this.inner.push(op, bufs.slice(0, 4), ints, floats);
      this.inner.copy(bufs[4] as Float32Array, bufs[0] as Float32Array);
      return;
    }
    this.inner.push(op, bufs, ints, floats);
  }

  run(): Promise<void> {
    return this.inner.run();
  }
}

const box = (data: Float32Array, whole = true): Box => new Box(data, whole);

/** Counts of the device's host reads and writes (to see that the runtime goes through them). */
export interface BoxedCounts {
  reads: number;
  writes: number;
}

/** A fresh boxed device (fp32 storage for both classes, like the CPU device, whatever its computeDtype). */
export function boxedDevice(counts: BoxedCounts = { reads: 0, writes: 0 }, computeDtype: ComputeDtype = 'fp32'): Device<Box, Int32Array> {
  return {
    kind: 'cuda',
    computeDtype,
    zeros: (n) => box(new Float32Array(n)),
    storage: () => 'f32',
    storageOf: () => 'f32',
    zero: (t) => {
      t.data.fill(0);
    },
    upload: (data) => box(Float32Array.from(data)),
    write: (t, data) => {
      counts.writes++;
      t.data.set(data);
    },
    copy: (dst, src) => {
      if (dst.length !== src.length) throw new Error(`boxed copy: ${dst.length} vs ${src.length} elements`);
      dst.data.set(src.data);
    },
    view: (t, begin, end) => box(t.data.subarray(begin, end), false),
    // A copy, as a GPU device's download is: the caller cannot write through it.
    read: (t) => {
      counts.reads++;
      return t.data.slice();
    },
    ints: (data) => data,
    isWhole: (t) => t.whole,
    isTensor: (v): v is Box => v instanceof Box,
    memory: () => null,
    resetPeaks: () => undefined,
    synchronize: () => undefined,
    batch: () => new BoxedBatch(),
  };
}

/** A communicator moving boxes, over a CPU communicator of their host arrays. */
export class BoxedCommunicator implements Communicator<Box> {
  constructor(private readonly inner: Communicator<Float32Array>) {}

  get backend(): Communicator['backend'] {
    return this.inner.backend;
  }

  get rank(): number {
    return this.inner.rank;
  }

  get worldSize(): number {
    return this.inner.worldSize;
  }

  allReduce(buffer: Box, op?: ReduceOp): Promise<void> {
    return this.inner.allReduce(buffer.data, op);
  }

  allGather(input: Box, output: Box): Promise<void> {
    return this.inner.allGather(input.data, output.data);
  }

  reduceScatter(input: Box, output: Box, op?: ReduceOp): Promise<void> {
    return this.inner.reduceScatter(input.data, output.data, op);
  }

  broadcast(buffer: Box, root: number): Promise<void> {
    return this.inner.broadcast(buffer.data, root);
  }

  send(buffer: Box, peer: number): Promise<void> {
    return this.inner.send(buffer.data, peer);
  }

  recv(buffer: Box, peer: number): Promise<void> {
    return this.inner.recv(buffer.data, peer);
  }

  async group(ops: readonly GroupOp<Box>[] | ((group: GroupBuilder<Box>) => void | Promise<void>)): Promise<void> {
    let list: GroupOp<Box>[];
    if (typeof ops === 'function') {
      list = [];
      const l = list;
      await ops({
        send: (buffer, peer) => l.push({ kind: 'send', buffer, peer }),
        recv: (buffer, peer) => l.push({ kind: 'recv', buffer, peer }),
        allReduce: (buffer, op) => l.push({ kind: 'allReduce', buffer, op }),
        allGather: (input, output) => l.push({ kind: 'allGather', input, output }),
        reduceScatter: (input, output, op) => l.push({ kind: 'reduceScatter', input, output, op }),
        broadcast: (buffer, root) => l.push({ kind: 'broadcast', buffer, root }),
      });
    } else {
      list = [...ops];
    }
    return this.inner.group(list.map((o): GroupOp<Float32Array> => {
      switch (o.kind) {
        case 'send': case 'recv': return { ...o, buffer: o.buffer.data };
        case 'allReduce': return { ...o, buffer: o.buffer.data };
        case 'broadcast': return { ...o, buffer: o.buffer.data };
        case 'allGather': return { ...o, input: o.input.data, output: o.output.data };
        case 'reduceScatter': return { ...o, input: o.input.data, output: o.output.data };
      }
    }));
  }

  barrier(): Promise<void> {
    return this.inner.barrier();
  }

  async split(color: number, key: number): Promise<Communicator<Box> | null> {
    const c = await this.inner.split(color, key);
    return c ? new BoxedCommunicator(c) : null;
  }

  destroy(): Promise<void> {
    return this.inner.destroy();
  }

  trafficStats(): ReturnType<Communicator['trafficStats']> {
    return this.inner.trafficStats();
  }
}
