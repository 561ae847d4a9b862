// The engine under every CPU-backend operation: moves ordered lists of frames to and from several
// peers at once with non-blocking sockets and poll(), so a rank sends and receives simultaneously
// (rings never stall, grouped send/recv pairs never deadlock). A send may wait until a number of
// frames have been received, which is how the ring algorithms pipeline slices from step to step.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "collectives/connection.h"
#include "collectives/interrupter.h"

namespace mist::collectives {

struct SendFrame {
  uint16_t opcode = 0;
  const void* data = nullptr;
  size_t bytes = 0;
  size_t afterRecvs = 0;  // send only once this many frames (over all peers) were received
};

struct RecvFrame {
  uint16_t opcode = 0;
  void* data = nullptr;
  size_t bytes = 0;
  std::function<void()> onComplete;  // runs right after the payload arrived (e.g. a reduction)
};

// Everything exchanged with one peer during one operation (at most one entry per connection).
struct PeerTraffic {
  Connection* conn = nullptr;
  std::vector<SendFrame> sends;
  std::vector<RecvFrame> recvs;
};

struct ExchangeContext {
  int64_t timeoutMs = 30000;  // fails when no byte moved for this long
  const Interrupter* interrupter = nullptr;
  std::atomic<uint64_t>* bytesSent = nullptr;
  std::atomic<uint64_t>* bytesReceived = nullptr;
};

// Runs until every frame moved. Throws CommError naming the peer on a closed connection, an abort
// notice from a peer, a mismatched frame, a timeout or an interruption.
void ExchangeFrames(std::vector<PeerTraffic>& traffic, const ExchangeContext& ctx);

// Best effort, bounded by `timeoutMs`: finishes any partly written frame with padding, sends an
// abort notice carrying `reason` on every connection, then shuts down the sending side, so peers
// blocked on this rank fail at once with the original reason instead of timing out.
void SendAbortNotices(std::vector<Connection>& conns, const std::string& reason, int64_t timeoutMs);

}  // namespace mist::collectives
