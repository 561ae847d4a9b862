// The CPU backend: float32 collectives between processes over TCP.
//
// Algorithms: all-reduce is a ring reduce-scatter followed by a ring all-gather (each rank sends
// 2(n-1)/n of the buffer); all-gather and reduce-scatter are the corresponding single rings;
// broadcast is a pipelined chain from the root along the ring. Every ring step is cut into slices
// of kSliceBytes and a slice is forwarded as soon as it was received (and reduced), so large
// buffers stream through the ring instead of moving step by step.
//
// Connections: one TCP connection per pair of ranks (cpu_mesh.h). A communicator made by split()
// gets connections of its own (a fresh listener and mesh among its members) rather than
// multiplexing over the parent's, so parent and child can never interleave frames.
//
// Failure: the first error breaks the communicator. The rank sends an abort notice carrying the
// error to every peer (which fail at once with that text, so the message names the rank that
// really failed), and every later call fails with the same message.
#pragma once
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "collectives/communicator.h"
#include "collectives/connection.h"
#include "collectives/frame_exchange.h"
#include "collectives/interrupter.h"

namespace mist::collectives {

struct CpuCommConfig {
  int rank = 0;
  int worldSize = 1;
  std::vector<std::string> peers;  // host:port of every rank
  int listenFd = -1;               // this rank's listening socket (owned by the communicator)
  std::string bindHost;            // the host the listener is bound to (split binds there too)
  uint64_t commTag = 0;
  int64_t timeoutMs = 30000;
};

class CpuCommunicator final : public Communicator {
 public:
  static constexpr size_t kSliceBytes = 1 << 20;

  explicit CpuCommunicator(CpuCommConfig config);
  ~CpuCommunicator() override;

  const char* backend() const override { return "cpu"; }
  int rank() const override { return cfg_.rank; }
  int size() const override { return cfg_.worldSize; }

  void Connect() override;
  void AllReduce(Buffer buf, ReduceOp op) override;
  void AllGather(Buffer input, Buffer output) override;
  void ReduceScatter(Buffer input, Buffer output, ReduceOp op) override;
  void Broadcast(Buffer buf, int root) override;
  void Group(const std::vector<GroupOp>& ops) override;
  void Barrier() override;
  std::unique_ptr<Communicator> Split(int color, int key) override;
  void Close() override;
  void Interrupt() override { interrupter_.Trigger(); }
  bool Traffic(TrafficStats& out) const override;

 private:
  struct RingShape;

  // Runs `body`; on a CommError breaks the communicator, notifies the peers and rethrows with
  // "<op> failed on rank r of n: ..." in front.
  template <typename Body>
  void Guarded(const char* op, Body&& body);

  void RingPass(uint16_t opcode, float* work, const RingShape& shape, ReduceOp op);
  void AllReduceImpl(uint16_t opcode, float* data, size_t count, ReduceOp op);
  void AllGatherImpl(uint16_t opcode, const float* input, float* output, size_t count);
  void ReduceScatterImpl(const float* input, float* output, size_t count, ReduceOp op);
  void BroadcastImpl(float* data, size_t count, int root);
  void PointToPoint(const std::vector<GroupOp>& ops);
  void Exchange(std::vector<PeerTraffic>& traffic);
  std::vector<PeerTraffic> RingTraffic();

  CpuCommConfig cfg_;
  std::string advertiseHost_;
  std::vector<Connection> conns_;
  Interrupter interrupter_;
  std::string failure_;  // the first error; empty while healthy
  int splitCount_ = 0;
  std::atomic<uint64_t> bytesSent_{0};
  std::atomic<uint64_t> bytesReceived_{0};
};

}  // namespace mist::collectives
