// Ring algorithms of the CPU backend (see cpu_communicator.h for the overview).
//
// The buffer is cut into n segments (the first count % n one element longer). At ring step k rank
// r sends segment (r - k - 1 + shift) to its right neighbour and receives segment
// (r - k - 2 + shift) from its left one; during the reduce steps the received data is reduced into
// the local segment, during the gather steps it overwrites it. An all-reduce is n-1 reduce steps
// followed by n-1 gather steps with the same formula, so it runs as one pipeline.
//
// Each step is cut into slices; slice j of step k is sent as soon as slice j of step k-1 was
// received, so data streams through the ring. This is safe in place: a slice region is only
// rewritten by a receive that causally follows (around the ring) the send of that region.
#include <algorithm>
#include <cstring>
#include <vector>

#include "collectives/cpu_communicator.h"
#include "collectives/reduce_kernels.h"
#include "collectives/wire_format.h"

namespace mist::collectives {

struct CpuCommunicator::RingShape {
  size_t count = 0;  // elements of the whole buffer
  int worldSize = 1;
  int reduceSteps = 0;
  int gatherSteps = 0;
  int shift = 0;  // 1 when every rank starts owning its own segment (all-gather)

  size_t SegmentLength(int s) const {
    return count / worldSize + (static_cast<size_t>(s) < count % worldSize ? 1 : 0);
  }
  size_t SegmentOffset(int s) const {
    return static_cast<size_t>(s) * (count / worldSize) + std::min<size_t>(s, count % worldSize);
  }
};

namespace {

constexpr size_t kSliceElements = CpuCommunicator::kSliceBytes / sizeof(float);

struct Slice {
  size_t offset;
  size_t length;
};

template <typename Shape>
Slice SliceOf(const Shape& shape, int segment, size_t j) {
  const size_t segLength = shape.SegmentLength(segment);
  const size_t begin = j * kSliceElements;
  if (begin >= segLength) return {shape.SegmentOffset(segment), 0};
  return {shape.SegmentOffset(segment) + begin, std::min(kSliceElements, segLength - begin)};
}

}  // namespace

// traffic.front() carries what comes from the left neighbour, traffic.back() what goes to the
// right one; with two ranks both are the same connection.
std::vector<PeerTraffic> CpuCommunicator::RingTraffic() {
  const int n = cfg_.worldSize;
  const int left = (cfg_.rank + n - 1) % n;
  const int right = (cfg_.rank + 1) % n;
  std::vector<PeerTraffic> traffic;
  traffic.push_back(PeerTraffic{&conns_[left], {}, {}});
  if (right != left) traffic.push_back(PeerTraffic{&conns_[right], {}, {}});
  return traffic;
}

void CpuCommunicator::RingPass(uint16_t opcode, float* work, const RingShape& shape, ReduceOp op) {
  const int n = cfg_.worldSize;
  const int r = cfg_.rank;
  auto mod = [n](int x) { return ((x % n) + n) % n; };
  const size_t slices = std::max<size_t>(1, (shape.SegmentLength(0) + kSliceElements - 1) / kSliceElements);
  const int steps = shape.reduceSteps + shape.gatherSteps;
  // Received slices of the reduce steps land here and are reduced at once, so one slice suffices.
  std::vector<float> scratch(shape.reduceSteps > 0 ? std::min(shape.SegmentLength(0), kSliceElements) : 0);
  float* tmp = scratch.data();

  std::vector<PeerTraffic> traffic = RingTraffic();
  PeerTraffic& fromLeft = traffic.front();
  PeerTraffic& toRight = traffic.back();
  toRight.sends.reserve(slices * steps);
  fromLeft.recvs.reserve(slices * steps);
  for (int k = 0; k < steps; ++k) {
    const int sendSegment = mod(r - k - 1 + shape.shift);
    const int recvSegment = mod(r - k - 2 + shape.shift);
    for (size_t j = 0; j < slices; ++j) {
      const Slice out = SliceOf(shape, sendSegment, j);
      const size_t after = k == 0 ? 0 : (static_cast<size_t>(k) - 1) * slices + j + 1;
      toRight.sends.push_back(SendFrame{opcode, work + out.offset, out.length * sizeof(float), after});

      const Slice in = SliceOf(shape, recvSegment, j);
      if (k < shape.reduceSteps) {
        const bool finishAverage = op == ReduceOp::kAvg && k == shape.reduceSteps - 1;
        float* dst = work + in.offset;
        const size_t len = in.length;
        fromLeft.recvs.push_back(RecvFrame{opcode, tmp, len * sizeof(float), [dst, tmp, len, op, finishAverage, n] {
                                             ReduceInto(dst, tmp, len, op);
                                             if (finishAverage) DivideBy(dst, len, static_cast<float>(n));
                                           }});
      } else {
        fromLeft.recvs.push_back(RecvFrame{opcode, work + in.offset, in.length * sizeof(float), nullptr});
      }
    }
  }
  Exchange(traffic);
}

void CpuCommunicator::AllReduceImpl(uint16_t opcode, float* data, size_t count, ReduceOp op) {
  const int n = cfg_.worldSize;
  if (n == 1) return;  // sum, max and average of one contribution are the contribution
  RingShape shape{count, n, n - 1, n - 1, 0};
  RingPass(opcode, data, shape, op);
}

void CpuCommunicator::AllGatherImpl(uint16_t opcode, const float* input, float* output, size_t count) {
  const int n = cfg_.worldSize;
  float* own = output + static_cast<size_t>(cfg_.rank) * count;
  if (own != input && count > 0) std::memmove(own, input, count * sizeof(float));
  if (n == 1) return;
  RingShape shape{count * n, n, 0, n - 1, 1};
  RingPass(opcode, output, shape, ReduceOp::kSum);
}

void CpuCommunicator::ReduceScatterImpl(const float* input, float* output, size_t count, ReduceOp op) {
  const int n = cfg_.worldSize;
  if (n == 1) {
    if (output != input && count > 0) std::memmove(output, input, count * sizeof(float));
    return;
  }
  // The input must stay untouched, so the partial sums live in a working copy.
  std::vector<float> work(input, input + count * n);
  RingShape shape{count * n, n, n - 1, 0, 0};
  RingPass(wire::kReduceScatter, work.data(), shape, op);
  if (count > 0) std::memcpy(output, work.data() + static_cast<size_t>(cfg_.rank) * count, count * sizeof(float));
}

// A chain from the root along the ring, pipelined by slices: each rank forwards slice j as soon as
// it arrived, so every rank sends the buffer at most once.
void CpuCommunicator::BroadcastImpl(float* data, size_t count, int root) {
  const int n = cfg_.worldSize;
  if (n == 1) return;
  const int position = (cfg_.rank - root + n) % n;
  const size_t slices = std::max<size_t>(1, (count + kSliceElements - 1) / kSliceElements);
  std::vector<PeerTraffic> traffic = RingTraffic();
  for (size_t j = 0; j < slices; ++j) {
    const size_t offset = std::min(count, j * kSliceElements);
    const size_t length = std::min(kSliceElements, count - offset);
    if (position > 0) traffic.front().recvs.push_back(RecvFrame{wire::kBroadcast, data + offset, length * sizeof(float), nullptr});
    if (position < n - 1) {
      traffic.back().sends.push_back(SendFrame{wire::kBroadcast, data + offset, length * sizeof(float), position == 0 ? 0 : j + 1});
    }
  }
  Exchange(traffic);
}

}  // namespace mist::collectives
