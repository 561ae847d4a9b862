// What the CPU backend puts on its TCP connections. Every payload travels in a frame with a
// 16-byte header, so a rank can tell data from an abort notice, and mismatched calls (different
// operations or buffer sizes on two ranks) fail with a clear error instead of corrupting data.
// Fields are in host byte order: all ranks of a communicator must share the byte order (every
// x86-64 and arm64 host does).
#pragma once
#include <cstdint>

namespace mist::collectives::wire {

constexpr uint32_t kFrameMagic = 0x5453494Du;  // "MIST"
constexpr uint32_t kHelloMagic = 0x4F4C4548u;  // "HELO"
constexpr uint32_t kProtocolVersion = 1;
constexpr uint32_t kMaxAbortTextBytes = 64 * 1024;

enum FrameKind : uint16_t { kData = 1, kAbort = 2 };

enum OpCode : uint16_t {
  kAllReduce = 1,
  kAllGather = 2,
  kReduceScatter = 3,
  kBroadcast = 4,
  kSendRecv = 5,
  kBarrier = 6,
  kSplit = 7,
};

inline const char* OpCodeName(uint16_t op) {
  switch (op) {
    case kAllReduce: return "allReduce";
    case kAllGather: return "allGather";
    case kReduceScatter: return "reduceScatter";
    case kBroadcast: return "broadcast";
    case kSendRecv: return "send/recv";
    case kBarrier: return "barrier";
    case kSplit: return "split";
  }
  return "an unknown operation";
}

struct FrameHeader {
  uint32_t magic;
  uint16_t kind;
  uint16_t opcode;
  uint64_t bytes;  // payload bytes that follow
};
static_assert(sizeof(FrameHeader) == 16, "FrameHeader must be 16 bytes on the wire");

// Sent by the connecting (higher) rank right after connect; answered with a HelloAck.
struct Hello {
  uint32_t magic;
  uint32_t version;
  uint64_t commTag;  // identifies the communicator (hash of the peers list, or of the split)
  int32_t rank;
  int32_t worldSize;
};
static_assert(sizeof(Hello) == 24, "Hello must be 24 bytes on the wire");

enum HelloStatus : uint32_t { kHelloOk = 0, kHelloWrongCommunicator = 1, kHelloBadRank = 2 };

struct HelloAck {
  uint32_t magic;
  uint32_t status;
};

}  // namespace mist::collectives::wire
