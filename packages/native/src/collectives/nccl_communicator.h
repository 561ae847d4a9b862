// The NCCL backend: the same Communicator interface on GPU memory, through the dlopen'ed NCCL
// and CUDA runtime (gpu_runtime.h). Each call enqueues the NCCL kernels on the communicator's own
// CUDA stream, then waits for the stream while polling ncclCommGetAsyncError; on an asynchronous
// error, a timeout or destroy() it calls ncclCommAbort, so a dead peer never hangs the caller.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "collectives/communicator.h"
#include "collectives/interrupter.h"
#include "collectives/nccl_abi.h"

namespace mist::collectives {

class NcclCommunicator final : public Communicator {
 public:
  // A communicator that Connect() creates with ncclCommInitRank.
  NcclCommunicator(const ncclUniqueId& id, int rank, int worldSize, int device, int64_t timeoutMs);
  ~NcclCommunicator() override;

  const char* backend() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int size() const override { return worldSize_; }

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
  bool Traffic(TrafficStats&) const override { return false; }  // NCCL does not report it

 private:
  // A communicator that already exists (made by ncclCommSplit); Connect() only prepares the stream.
  NcclCommunicator(ncclComm_t comm, int rank, int worldSize, int device, int64_t timeoutMs);

  template <typename Body>
  void Guarded(const char* op, Body&& body);
  void Enqueue(const GroupOp& op);
  void CheckNccl(const char* call, int result);
  void WaitForStream();
  void Abort();
  std::unique_ptr<Communicator> SplitByNewCommunicator(int color, int key);

  ncclUniqueId id_{};
  int rank_;
  int worldSize_;
  int device_;
  int64_t timeoutMs_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  bool ownsStream_ = true;  // false when it is the CUDA backend's communication stream
  float* barrierScratch_ = nullptr;  // one float on the device for barrier()
  Interrupter interrupter_;
  std::string failure_;
};

// Runs ncclCommInitRank on a helper thread and waits for it at most `timeoutMs` (it blocks until
// every rank joined). On timeout the helper is abandoned and frees the communicator if it ever
// completes. Throws CommError.
ncclComm_t InitNcclRank(const ncclUniqueId& id, int rank, int worldSize, int device, int64_t timeoutMs,
                        const Interrupter& interrupter);

}  // namespace mist::collectives
