// Addon functions that operate on a communicator handle:
//   commRun(comm, ops): Promise<void>        one op, or several issued as a group
//   commBarrier(comm), commSplit(comm, color, key), commDestroy(comm): Promise<...>
//   commInfo(comm): { backend, rank, worldSize }, commTraffic(comm): { bytesSent, bytesReceived } | null
// An op is { kind, input?, output?, peer?, op? } where kind is send | recv | allReduce |
// allGather | reduceScatter | broadcast (peer is the root for broadcast).
#include <cstring>
#include <string>
#include <vector>

#include "addon/registry.h"
#include "collectives/comm_handle.h"
#include "collectives/device_memory.h"
#include "cuda/tensor_handle.h"

namespace mist::collectives {
namespace {

// A Float32Array for the CPU backend, a device buffer for NCCL; referenced until the call settles.
Buffer ToBuffer(const CommHandle& handle, Napi::Value value, const std::string& what, std::vector<Napi::Value>& keepAlive) {
  Napi::Env env = value.Env();
  Buffer buf;
  if (std::strcmp(handle.comm().backend(), "cpu") == 0) {
    if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      throw Napi::TypeError::New(env, what + " must be a Float32Array for the cpu backend");
    }
    auto array = value.As<Napi::Float32Array>();
    buf.data = array.Data();
    buf.count = array.ElementLength();
  } else if (cuda::TensorView t; cuda::ReadTensorHandle(value, t)) {
    // A tensor of the CUDA compute backend (the executor's own activations and gradients).
    if (t.dtype == cuda::DType::kI32) throw Napi::TypeError::New(env, what + " is an int32 tensor; collectives take f32, bf16 or f16");
    buf.data = reinterpret_cast<void*>(t.ptr);
    buf.count = t.count;
    buf.type = t.dtype == cuda::DType::kBF16 ? ElementType::kBfloat16 : t.dtype == cuda::DType::kF16 ? ElementType::kFloat16 : ElementType::kFloat32;
  } else {
    DeviceAllocation& alloc = UnwrapDeviceAllocation(value, what);
    if (alloc.ptr == nullptr) throw Napi::Error::New(env, what + " was freed");
    buf.data = alloc.ptr;
    buf.count = alloc.bytes / sizeof(float);
  }
  keepAlive.push_back(value);
  return buf;
}

ReduceOp ToReduceOp(Napi::Value value, const std::string& where) {
  const std::string name = value.IsString() ? value.As<Napi::String>().Utf8Value() : "";
  if (name == "sum") return ReduceOp::kSum;
  if (name == "avg") return ReduceOp::kAvg;
  if (name == "max") return ReduceOp::kMax;
  throw Napi::TypeError::New(value.Env(), where + ": op must be 'sum', 'avg' or 'max'");
}

GroupOpKind ToKind(Napi::Value value) {
  const std::string name = value.IsString() ? value.As<Napi::String>().Utf8Value() : "";
  for (GroupOpKind kind : {GroupOpKind::kSend, GroupOpKind::kRecv, GroupOpKind::kAllReduce, GroupOpKind::kAllGather,
                           GroupOpKind::kReduceScatter, GroupOpKind::kBroadcast}) {
    if (name == GroupOpName(kind)) return kind;
  }
  throw Napi::TypeError::New(value.Env(), "unknown operation kind '" + name + "'");
}

int ToPeer(Napi::Value value, const std::string& where) {
  if (!value.IsNumber()) throw Napi::TypeError::New(value.Env(), where + " must be a rank number");
  double d = value.As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int>(d))) throw Napi::TypeError::New(value.Env(), where + " must be an integer rank");
  return static_cast<int>(d);
}

GroupOp ParseOp(const CommHandle& handle, Napi::Object obj, std::vector<Napi::Value>& keepAlive) {
  GroupOp op;
  op.kind = ToKind(obj.Get("kind"));
  const std::string name = GroupOpName(op.kind);
  switch (op.kind) {
    case GroupOpKind::kSend:
      op.input = ToBuffer(handle, obj.Get("input"), name + ": buffer", keepAlive);
      op.peer = ToPeer(obj.Get("peer"), name + ": peer");
      break;
    case GroupOpKind::kRecv:
      op.output = ToBuffer(handle, obj.Get("output"), name + ": buffer", keepAlive);
      op.peer = ToPeer(obj.Get("peer"), name + ": peer");
      break;
    case GroupOpKind::kAllReduce:
      op.input = ToBuffer(handle, obj.Get("input"), name + ": buffer", keepAlive);
      op.op = ToReduceOp(obj.Get("op"), name);
      break;
    case GroupOpKind::kAllGather:
      op.input = ToBuffer(handle, obj.Get("input"), name + ": input", keepAlive);
      op.output = ToBuffer(handle, obj.Get("output"), name + ": output", keepAlive);
      break;
    case GroupOpKind::kReduceScatter:
      op.input = ToBuffer(handle, obj.Get("input"), name + ": input", keepAlive);
      op.output = ToBuffer(handle, obj.Get("output"), name + ": output", keepAlive);
      op.op = ToReduceOp(obj.Get("op"), name);
      break;
    case GroupOpKind::kBroadcast:
      op.input = ToBuffer(handle, obj.Get("input"), name + ": buffer", keepAlive);
      op.peer = ToPeer(obj.Get("peer"), name + ": root");
      break;
  }
  try {
    ValidateOp(handle.comm(), op);
  } catch (const CommError& e) {
    throw Napi::RangeError::New(obj.Env(), e.what());
  }
  return op;
}

Napi::Value CommRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CommHandle& handle = CommHandle::Unwrap(info[0]);
  if (!info[1].IsArray()) throw Napi::TypeError::New(env, "expected an array of operations");
  Napi::Array list = info[1].As<Napi::Array>();
  std::vector<GroupOp> ops;
  std::vector<Napi::Value> keepAlive;
  for (uint32_t i = 0; i < list.Length(); ++i) {
    Napi::Value item = list.Get(i);
    if (!item.IsObject()) throw Napi::TypeError::New(env, "operation " + std::to_string(i) + " is not an object");
    ops.push_back(ParseOp(handle, item.As<Napi::Object>(), keepAlive));
  }
  if (ops.empty()) {
    auto deferred = Napi::Promise::Deferred::New(env);
    deferred.Resolve(env.Undefined());
    return deferred.Promise();
  }
  return handle.Submit(env, info[0], keepAlive, [ops = std::move(ops)](Communicator& comm, PendingCall&) { comm.Group(ops); });
}

Napi::Value CommBarrier(const Napi::CallbackInfo& info) {
  CommHandle& handle = CommHandle::Unwrap(info[0]);
  return handle.Submit(info.Env(), info[0], {}, [](Communicator& comm, PendingCall&) { comm.Barrier(); });
}

// Resolves with the child's handle, or null for ranks that passed a negative color.
Napi::Value CommSplit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CommHandle& handle = CommHandle::Unwrap(info[0]);
  if (!info[1].IsNumber() || !info[2].IsNumber()) throw Napi::TypeError::New(env, "split: color and key must be integers");
  const int color = info[1].As<Napi::Number>().Int32Value();
  const int key = info[2].As<Napi::Number>().Int32Value();
  return handle.Submit(env, info[0], {}, [color, key](Communicator& comm, PendingCall& call) {
    std::shared_ptr<std::unique_ptr<Communicator>> child =
        std::make_shared<std::unique_ptr<Communicator>>(comm.Split(color, key));
    call.result = [child](Napi::Env e, PendingCall&) -> Napi::Value {
      if (!*child) return e.Null();
      return CommHandle::Wrap(e, std::move(*child));
    };
  });
}

Napi::Value CommDestroy(const Napi::CallbackInfo& info) {
  return CommHandle::Unwrap(info[0]).Destroy(info.Env(), info[0]);
}

Napi::Value CommInfo(const Napi::CallbackInfo& info) {
  const Communicator& comm = CommHandle::Unwrap(info[0]).comm();
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("backend", comm.backend());
  out.Set("rank", comm.rank());
  out.Set("worldSize", comm.size());
  return out;
}

Napi::Value CommTraffic(const Napi::CallbackInfo& info) {
  TrafficStats stats;
  if (!CommHandle::Unwrap(info[0]).comm().Traffic(stats)) return info.Env().Null();
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("bytesSent", static_cast<double>(stats.bytesSent));
  out.Set("bytesReceived", static_cast<double>(stats.bytesReceived));
  return out;
}

void InitCommFunctions(Napi::Env env, Napi::Object exports) {
  exports.Set("commRun", Napi::Function::New(env, CommRun, "commRun"));
  exports.Set("commBarrier", Napi::Function::New(env, CommBarrier, "commBarrier"));
  exports.Set("commSplit", Napi::Function::New(env, CommSplit, "commSplit"));
  exports.Set("commDestroy", Napi::Function::New(env, CommDestroy, "commDestroy"));
  exports.Set("commInfo", Napi::Function::New(env, CommInfo, "commInfo"));
  exports.Set("commTraffic", Napi::Function::New(env, CommTraffic, "commTraffic"));
}

const mist::Registrar registrar(&InitCommFunctions);

}  // namespace
}  // namespace mist::collectives
