#include "collectives/nccl_communicator.h"

#include "cuda/device.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "collectives/gpu_runtime.h"

namespace mist::collectives {
namespace {

using Clock = std::chrono::steady_clock;

void CheckCuda(const char* call, cudaError_t err) {
  if (err != MIST_CUDA_SUCCESS) throw CommError(gpu::CudaErrorText(call, err));
}

ncclRedOp_t ToNccl(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return ncclSum;
    case ReduceOp::kAvg: return ncclAvg;
    case ReduceOp::kMax: return ncclMax;
  }
  return ncclSum;
}

// Device memory that lives for one scope.
class DeviceScratch {
 public:
  explicit DeviceScratch(size_t bytes) {
    CheckCuda("cudaMalloc", gpu::RequireCuda().malloc(&ptr_, std::max<size_t>(bytes, 1)));
  }
  ~DeviceScratch() { gpu::Runtime().cuda.free(ptr_); }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  char* get() const { return static_cast<char*>(ptr_); }

 private:
  void* ptr_ = nullptr;
};

}  // namespace

ncclComm_t InitNcclRank(const ncclUniqueId& id, int rank, int worldSize, int device, int64_t timeoutMs,
                        const Interrupter& interrupter) {
  const gpu::NcclLibrary& nccl = gpu::RequireNccl();
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    bool abandoned = false;
    int result = ncclSuccess;
    cudaError_t cudaResult = MIST_CUDA_SUCCESS;
    ncclComm_t comm = nullptr;
  };
  auto state = std::make_shared<State>();
  std::thread([state, id, rank, worldSize, device, &nccl] {
    ncclComm_t comm = nullptr;
    int result = ncclSuccess;
    cudaError_t cudaResult = gpu::Runtime().cuda.setDevice(device);
    if (cudaResult == MIST_CUDA_SUCCESS) result = nccl.commInitRank(&comm, worldSize, id, rank);
    std::lock_guard<std::mutex> lock(state->mu);
    if (state->abandoned) {
      if (comm != nullptr) nccl.commAbort(comm);
      return;
    }
    state->done = true;
    state->result = result;
    state->cudaResult = cudaResult;
    state->comm = comm;
    state->cv.notify_all();
  }).detach();

  const auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  std::unique_lock<std::mutex> lock(state->mu);
  while (!state->done) {
    // Wake regularly to notice destroy().
    state->cv.wait_for(lock, std::chrono::milliseconds(50));
    if (state->done) break;
    if (interrupter.triggered() || Clock::now() >= deadline) {
      state->abandoned = true;
      if (interrupter.triggered()) throw CommError("the communicator was destroyed during ncclCommInitRank");
      throw CommError("ncclCommInitRank did not complete within " + std::to_string(timeoutMs) +
                      " ms (did all " + std::to_string(worldSize) + " ranks start with the same unique id?)");
    }
  }
  if (state->cudaResult != MIST_CUDA_SUCCESS) throw CommError(gpu::CudaErrorText("cudaSetDevice", state->cudaResult));
  if (state->result != ncclSuccess) {
    throw CommError(gpu::NcclErrorText("ncclCommInitRank", static_cast<ncclResult_t>(state->result)));
  }
  return state->comm;
}

NcclCommunicator::NcclCommunicator(const ncclUniqueId& id, int rank, int worldSize, int device, int64_t timeoutMs)
    : id_(id), rank_(rank), worldSize_(worldSize), device_(device), timeoutMs_(timeoutMs) {}

NcclCommunicator::NcclCommunicator(ncclComm_t comm, int rank, int worldSize, int device, int64_t timeoutMs)
    : rank_(rank), worldSize_(worldSize), device_(device), timeoutMs_(timeoutMs), comm_(comm) {}

NcclCommunicator::~NcclCommunicator() { Close(); }

template <typename Body>
void NcclCommunicator::Guarded(const char* op, Body&& body) {
  const std::string prefix =
      std::string(op) + " failed on rank " + std::to_string(rank_) + " of " + std::to_string(worldSize_) + ": ";
  if (!failure_.empty()) throw CommError(prefix + "the communicator is unusable after an earlier failure: " + failure_);
  try {
    // The current device is per thread, and a split child runs on a thread of its own.
    CheckCuda("cudaSetDevice", gpu::RequireCuda().setDevice(device_));
    body();
    return;
  } catch (const std::exception& e) {
    failure_ = prefix + e.what();
  }
  Abort();
  throw CommError(failure_);
}

void NcclCommunicator::CheckNccl(const char* call, int result) {
  if (result != ncclSuccess && result != ncclInProgress) {
    throw CommError(gpu::NcclErrorText(call, static_cast<ncclResult_t>(result), comm_));
  }
}

void NcclCommunicator::Abort() {
  if (comm_ != nullptr) gpu::Runtime().nccl.commAbort(comm_);
  comm_ = nullptr;
}

void NcclCommunicator::Connect() {
  Guarded("connect", [&] {
    const gpu::CudaRuntime& cuda = gpu::RequireCuda();
    CheckCuda("cudaSetDevice", cuda.setDevice(device_));
    // When this process computes on the same GPU through the CUDA backend, NCCL runs on its
    // communication stream, so compute and collectives order through events on the device
    // (cudaStreamWait). Both APIs share the device's primary context, so the stream is valid here.
    if (cuda::Device::Created() && cuda::Device::Get().properties().ordinal == device_) {
      stream_ = reinterpret_cast<cudaStream_t>(cuda::Device::Get().stream(cuda::StreamKind::kComm));
      ownsStream_ = false;
    } else {
      CheckCuda("cudaStreamCreateWithFlags", cuda.streamCreateWithFlags(&stream_, MIST_CUDA_STREAM_NON_BLOCKING));
      ownsStream_ = true;
    }
    void* scratch = nullptr;
    CheckCuda("cudaMalloc", cuda.malloc(&scratch, sizeof(float)));
    barrierScratch_ = static_cast<float*>(scratch);
    if (comm_ == nullptr) comm_ = InitNcclRank(id_, rank_, worldSize_, device_, timeoutMs_, interrupter_);
  });
}

// Polls instead of blocking in cudaStreamSynchronize, so that asynchronous NCCL errors, the
// timeout and destroy() are noticed while the kernels wait for a peer that may never come.
void NcclCommunicator::WaitForStream() {
  const gpu::GpuRuntime& rt = gpu::Runtime();
  const auto start = Clock::now();
  int sleepUs = 20;
  for (;;) {
    cudaError_t status = rt.cuda.streamQuery(stream_);
    if (status == MIST_CUDA_SUCCESS) return;
    if (status != MIST_CUDA_ERROR_NOT_READY) throw CommError(gpu::CudaErrorText("cudaStreamQuery", status));
    ncclResult_t async = ncclSuccess;
    rt.nccl.commGetAsyncError(comm_, &async);
    if (async != ncclSuccess && async != ncclInProgress) {
      throw CommError(gpu::NcclErrorText("NCCL (asynchronous error)", async, comm_));
    }
    if (interrupter_.triggered()) throw CommError("the communicator was destroyed");
    if (Clock::now() - start > std::chrono::milliseconds(timeoutMs_)) {
      throw CommError("timed out after " + std::to_string(timeoutMs_) +
                      " ms waiting for NCCL (a peer rank died or did not issue the same call); the communicator was aborted");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(sleepUs));
    sleepUs = std::min(sleepUs * 2, 1000);
  }
}

namespace {

ncclDataType_t NcclType(ElementType t) {
  switch (t) {
    case ElementType::kBfloat16: return ncclBfloat16;
    case ElementType::kFloat16: return ncclFloat16;
    case ElementType::kFloat32: break;
  }
  return ncclFloat32;
}

// The element type of a two-buffer collective: both sides must agree (NCCL moves bytes of one type).
ncclDataType_t PairType(const GroupOp& op) {
  if (op.input.type != op.output.type) {
    throw CommError(std::string(GroupOpName(op.kind)) + ": the input and output tensors have different dtypes");
  }
  return NcclType(op.input.type);
}

}  // namespace

void NcclCommunicator::Enqueue(const GroupOp& op) {
  const gpu::NcclLibrary& n = gpu::Runtime().nccl;
  switch (op.kind) {
    case GroupOpKind::kSend:
      CheckNccl("ncclSend", n.send(op.input.data, op.input.count, NcclType(op.input.type), op.peer, comm_, stream_));
      break;
    case GroupOpKind::kRecv:
      CheckNccl("ncclRecv", n.recv(op.output.data, op.output.count, NcclType(op.output.type), op.peer, comm_, stream_));
      break;
    case GroupOpKind::kAllReduce:
      CheckNccl("ncclAllReduce",
                n.allReduce(op.input.data, op.input.data, op.input.count, NcclType(op.input.type), ToNccl(op.op), comm_, stream_));
      break;
    case GroupOpKind::kAllGather:
      CheckNccl("ncclAllGather", n.allGather(op.input.data, op.output.data, op.input.count, PairType(op), comm_, stream_));
      break;
    case GroupOpKind::kReduceScatter:
      CheckNccl("ncclReduceScatter", n.reduceScatter(op.input.data, op.output.data, op.output.count, PairType(op),
                                                     ToNccl(op.op), comm_, stream_));
      break;
    case GroupOpKind::kBroadcast:
      CheckNccl("ncclBroadcast",
                n.broadcast(op.input.data, op.input.data, op.input.count, NcclType(op.input.type), op.peer, comm_, stream_));
      break;
  }
}

void NcclCommunicator::Group(const std::vector<GroupOp>& ops) {
  const char* name = ops.size() == 1 ? GroupOpName(ops[0].kind) : "group";
  Guarded(name, [&] {
    const gpu::NcclLibrary& n = gpu::Runtime().nccl;
    // On the CUDA backend's communication stream the buffers may have been written by kernels still
    // queued on its compute stream: the collective starts after them (an event, not a host wait).
    // The host waits for the collective itself (WaitForStream), so work queued after it sees the result.
    if (!ownsStream_) cuda::Device::Get().StreamWait(cuda::StreamKind::kComm, cuda::StreamKind::kCompute);
    CheckNccl("ncclGroupStart", n.groupStart());
    try {
      for (const GroupOp& op : ops) Enqueue(op);
    } catch (...) {
      n.groupEnd();
      throw;
    }
    CheckNccl("ncclGroupEnd", n.groupEnd());
    WaitForStream();
  });
}

void NcclCommunicator::AllReduce(Buffer buf, ReduceOp op) {
  GroupOp g;
  g.kind = GroupOpKind::kAllReduce;
  g.input = buf;
  g.op = op;
  Group({g});
}

void NcclCommunicator::AllGather(Buffer input, Buffer output) {
  GroupOp g;
  g.kind = GroupOpKind::kAllGather;
  g.input = input;
  g.output = output;
  Group({g});
}

void NcclCommunicator::ReduceScatter(Buffer input, Buffer output, ReduceOp op) {
  GroupOp g;
  g.kind = GroupOpKind::kReduceScatter;
  g.input = input;
  g.output = output;
  g.op = op;
  Group({g});
}

void NcclCommunicator::Broadcast(Buffer buf, int root) {
  GroupOp g;
  g.kind = GroupOpKind::kBroadcast;
  g.input = buf;
  g.peer = root;
  Group({g});
}

void NcclCommunicator::Barrier() {
  Guarded("barrier", [&] {
    CheckNccl("ncclAllReduce", gpu::Runtime().nccl.allReduce(barrierScratch_, barrierScratch_, 1, ncclFloat32, ncclSum,
                                                             comm_, stream_));
    WaitForStream();
  });
}

std::unique_ptr<Communicator> NcclCommunicator::Split(int color, int key) {
  std::unique_ptr<Communicator> child;
  Guarded("split", [&] {
    const gpu::NcclLibrary& n = gpu::Runtime().nccl;
    if (n.commSplit == nullptr) {
      child = SplitByNewCommunicator(color, key);
      return;
    }
    ncclComm_t newComm = nullptr;
    CheckNccl("ncclCommSplit", n.commSplit(comm_, color < 0 ? MIST_NCCL_SPLIT_NOCOLOR : color, key, &newComm, nullptr));
    if (newComm == nullptr) return;
    int newRank = 0, newSize = 0;
    CheckNccl("ncclCommUserRank", n.commUserRank(newComm, &newRank));
    CheckNccl("ncclCommCount", n.commCount(newComm, &newSize));
    std::unique_ptr<Communicator> made(new NcclCommunicator(newComm, newRank, newSize, device_, timeoutMs_));
    made->Connect();
    child = std::move(made);
  });
  return child;
}

// NCCL before 2.18 has no ncclCommSplit: all-gather (color, key) over this communicator, let the
// first member of each color create a unique id, all-gather the ids and init a new communicator.
std::unique_ptr<Communicator> NcclCommunicator::SplitByNewCommunicator(int color, int key) {
  const gpu::NcclLibrary& n = gpu::Runtime().nccl;
  const gpu::CudaRuntime& cuda = gpu::Runtime().cuda;
  const size_t ranks = static_cast<size_t>(worldSize_);

  std::vector<int32_t> pairs(2 * ranks);
  DeviceScratch pairsDev(pairs.size() * sizeof(int32_t));
  const int32_t mine[2] = {color, key};
  char* mineDev = pairsDev.get() + 2 * sizeof(int32_t) * rank_;
  CheckCuda("cudaMemcpy", cuda.memcpy(mineDev, mine, sizeof mine, cudaMemcpyHostToDevice));
  CheckNccl("ncclAllGather", n.allGather(mineDev, pairsDev.get(), 2, ncclInt32, comm_, stream_));
  WaitForStream();
  CheckCuda("cudaMemcpy", cuda.memcpy(pairs.data(), pairsDev.get(), pairs.size() * sizeof(int32_t), cudaMemcpyDeviceToHost));

  std::vector<int> members;
  for (int i = 0; i < worldSize_; ++i) {
    if (color >= 0 && pairs[2 * i] == color) members.push_back(i);
  }
  std::stable_sort(members.begin(), members.end(), [&](int a, int b) { return pairs[2 * a + 1] < pairs[2 * b + 1]; });
  const bool leader = !members.empty() && members[0] == rank_;

  ncclUniqueId id{};
  if (leader) CheckNccl("ncclGetUniqueId", n.getUniqueId(&id));
  std::vector<char> ids(ranks * sizeof(ncclUniqueId));
  DeviceScratch idsDev(ids.size());
  char* myIdDev = idsDev.get() + sizeof(ncclUniqueId) * rank_;
  CheckCuda("cudaMemcpy", cuda.memcpy(myIdDev, &id, sizeof id, cudaMemcpyHostToDevice));
  CheckNccl("ncclAllGather", n.allGather(myIdDev, idsDev.get(), sizeof(ncclUniqueId), ncclUint8, comm_, stream_));
  WaitForStream();
  CheckCuda("cudaMemcpy", cuda.memcpy(ids.data(), idsDev.get(), ids.size(), cudaMemcpyDeviceToHost));
  if (members.empty()) return nullptr;

  std::memcpy(&id, ids.data() + sizeof(ncclUniqueId) * members[0], sizeof id);
  const int newRank = static_cast<int>(std::find(members.begin(), members.end(), rank_) - members.begin());
  const int newSize = static_cast<int>(members.size());
  ncclComm_t newComm = InitNcclRank(id, newRank, newSize, device_, timeoutMs_, interrupter_);
  std::unique_ptr<Communicator> made(new NcclCommunicator(newComm, newRank, newSize, device_, timeoutMs_));
  made->Connect();
  return made;
}

void NcclCommunicator::Close() {
  const gpu::GpuRuntime& rt = gpu::Runtime();
  if (!rt.cudaAvailable) return;
  rt.cuda.setDevice(device_);
  if (comm_ != nullptr) {
    // Destroy waits for outstanding work; after a failure or destroy() mid-call, abort instead.
    if (failure_.empty() && !interrupter_.triggered()) {
      rt.nccl.commDestroy(comm_);
    } else {
      rt.nccl.commAbort(comm_);
    }
    comm_ = nullptr;
  }
  if (barrierScratch_ != nullptr) rt.cuda.free(barrierScratch_);
  barrierScratch_ = nullptr;
  if (stream_ != nullptr && ownsStream_) rt.cuda.streamDestroy(stream_);
  stream_ = nullptr;
}

}  // namespace mist::collectives
