// The backend-independent communicator interface. Every method is blocking and is only ever called
// from the communicator's own worker thread (op_queue.h), one call at a time and in submission
// order, so backends need no locking of their own except for Interrupt().
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "collectives/comm_error.h"

namespace mist::collectives {

enum class ReduceOp { kSum, kAvg, kMax };

// A float32 array: host memory for the CPU backend, device memory for NCCL.
// Element types of a buffer: the CPU backend takes float32 only; NCCL any storage dtype.
enum class ElementType { kFloat32, kBfloat16, kFloat16 };

struct Buffer {
  void* data = nullptr;
  size_t count = 0;  // elements
  ElementType type = ElementType::kFloat32;
};

enum class GroupOpKind { kSend, kRecv, kAllReduce, kAllGather, kReduceScatter, kBroadcast };

struct GroupOp {
  GroupOpKind kind = GroupOpKind::kSend;
  Buffer input;   // send, allReduce, allGather/reduceScatter input, broadcast buffer
  Buffer output;  // recv, allGather/reduceScatter output
  int peer = 0;   // send/recv peer, broadcast root
  ReduceOp op = ReduceOp::kSum;
};

struct TrafficStats {
  uint64_t bytesSent = 0;
  uint64_t bytesReceived = 0;
};

const char* ReduceOpName(ReduceOp op);
const char* GroupOpName(GroupOpKind kind);

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual const char* backend() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Establishes connections (CPU) or the NCCL communicator; called once before anything else.
  virtual void Connect() = 0;
  virtual void AllReduce(Buffer buf, ReduceOp op) = 0;
  virtual void AllGather(Buffer input, Buffer output) = 0;
  virtual void ReduceScatter(Buffer input, Buffer output, ReduceOp op) = 0;
  virtual void Broadcast(Buffer buf, int root) = 0;
  // Send/recv and collectives issued together; matching send/recv pairs never deadlock.
  virtual void Group(const std::vector<GroupOp>& ops) = 0;
  virtual void Barrier() = 0;
  // Collective over this communicator; returns a connected communicator, or nullptr for ranks
  // whose color is negative.
  virtual std::unique_ptr<Communicator> Split(int color, int key) = 0;
  // Releases every resource. After a failure the backend aborts instead of closing cleanly.
  virtual void Close() = 0;
  // May be called from any thread: makes a blocked call return soon with an error.
  virtual void Interrupt() = 0;
  // Bytes moved on the wire by this rank, or false when the backend does not count them.
  virtual bool Traffic(TrafficStats& out) const = 0;
};

// Validates the arguments shared by both backends and throws CommError with a message that names
// the operation ("allGather: output has 10 elements but worldSize 4 x input 3 = 12 are needed").
void ValidateOp(const Communicator& comm, const GroupOp& op);

}  // namespace mist::collectives
