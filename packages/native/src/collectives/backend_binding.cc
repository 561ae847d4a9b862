// Addon functions that report the backends and create communicators:
//   collectivesBackends(), cpuListen(host, port), cpuListenerClose(listener),
//   cpuCommCreate(listener, rank, worldSize, peers, timeoutMs),
//   ncclGetUniqueId(), ncclCommCreate(uniqueId, rank, worldSize, device, timeoutMs).
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "addon/registry.h"
#include "collectives/comm_handle.h"
#include "collectives/cpu_communicator.h"
#include "collectives/cpu_mesh.h"
#include "collectives/gpu_runtime.h"
#include "collectives/nccl_communicator.h"
#include "collectives/tcp_socket.h"

namespace mist::collectives {
namespace {

const napi_type_tag kListenerTag = {0x6d6973742d6c6973ULL, 0x74656e6572303031ULL};

// A bound, listening socket waiting to be handed to cpuCommCreate().
struct CpuListener {
  int fd = -1;  // -1 once closed or taken by a communicator
  std::string host;
  uint16_t port = 0;
};

int IntArg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(fn) + ": " + name + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int64_t>(d)) || d < -2147483648.0 || d > 2147483647.0) {
    throw Napi::TypeError::New(info.Env(), std::string(fn) + ": " + name + " must be an integer");
  }
  return static_cast<int>(d);
}

void CheckRankAndSize(Napi::Env env, const char* fn, int rank, int worldSize) {
  if (worldSize < 1) throw Napi::RangeError::New(env, std::string(fn) + ": worldSize must be at least 1");
  if (rank < 0 || rank >= worldSize) {
    throw Napi::RangeError::New(env, std::string(fn) + ": rank " + std::to_string(rank) + " is outside [0, " +
                                         std::to_string(worldSize) + ")");
  }
}

int64_t TimeoutArg(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  if (!info[i].IsNumber() || !(info[i].As<Napi::Number>().DoubleValue() > 0)) {
    throw Napi::RangeError::New(info.Env(), std::string(fn) + ": timeoutMs must be a positive number");
  }
  return static_cast<int64_t>(info[i].As<Napi::Number>().DoubleValue());
}

// Resolves a creation call with the communicator's own handle once Connect() succeeded.
Napi::Promise ConnectAndResolve(Napi::Env env, std::unique_ptr<Communicator> comm) {
  Napi::External<CommHandle> external = CommHandle::Wrap(env, std::move(comm));
  return external.Data()->Submit(env, external, {}, [](Communicator& c, PendingCall& call) {
    c.Connect();
    call.result = [](Napi::Env, PendingCall& done) { return done.keepAlive[0].Value(); };
  });
}

Napi::Value Backends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const gpu::GpuRuntime& rt = gpu::Runtime();
  Napi::Array list = Napi::Array::New(env, 2);
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("name", "cpu");
  cpu.Set("available", true);
  list.Set(0u, cpu);
  Napi::Object nccl = Napi::Object::New(env);
  nccl.Set("name", "nccl");
  nccl.Set("available", rt.ncclAvailable);
  if (!rt.ncclAvailable) nccl.Set("reason", rt.ncclReason);
  if (!rt.ncclPath.empty()) nccl.Set("library", rt.ncclPath);
  if (rt.ncclVersion > 0) nccl.Set("version", rt.ncclVersion);
  if (rt.cudaAvailable) nccl.Set("devices", rt.deviceCount);
  list.Set(1u, nccl);
  return list;
}

// cpuListen(host: string, port: number): { listener, port }
Napi::Value CpuListen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "listenCpu: host must be a string");
  const int port = IntArg(info, 1, "listenCpu", "port");
  if (port < 0 || port > 65535) throw Napi::RangeError::New(env, "listenCpu: port must be in [0, 65535]");
  const std::string host = info[0].As<Napi::String>().Utf8Value();
  auto* listener = new CpuListener{-1, host, 0};
  try {
    listener->fd = net::Listen(host, static_cast<uint16_t>(port), listener->port);
  } catch (const std::exception& e) {
    delete listener;
    throw Napi::Error::New(env, std::string("listenCpu: ") + e.what());
  }
  auto external = Napi::External<CpuListener>::New(env, listener, [](Napi::Env, CpuListener* l) {
    if (l->fd >= 0) ::close(l->fd);
    delete l;
  });
  external.TypeTag(&kListenerTag);
  Napi::Object result = Napi::Object::New(env);
  result.Set("listener", external);
  result.Set("port", listener->port);
  return result;
}

CpuListener& UnwrapListener(Napi::Value v, const char* fn) {
  if (!v.IsExternal() || !v.As<Napi::External<CpuListener>>().CheckTypeTag(&kListenerTag)) {
    throw Napi::TypeError::New(v.Env(), std::string(fn) + ": expected a listener from listenCpu()");
  }
  return *v.As<Napi::External<CpuListener>>().Data();
}

Napi::Value CpuListenerClose(const Napi::CallbackInfo& info) {
  CpuListener& l = UnwrapListener(info[0], "close");
  if (l.fd >= 0) ::close(l.fd);
  l.fd = -1;
  return info.Env().Undefined();
}

// cpuCommCreate(listener, rank, worldSize, peers: string[], timeoutMs): Promise<handle>
Napi::Value CpuCommCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "createCommunicator";
  CpuListener& listener = UnwrapListener(info[0], fn);
  const int rank = IntArg(info, 1, fn, "rank");
  const int worldSize = IntArg(info, 2, fn, "worldSize");
  CheckRankAndSize(env, fn, rank, worldSize);
  if (!info[3].IsArray()) throw Napi::TypeError::New(env, "createCommunicator: peers must be an array of host:port strings");
  Napi::Array peersArray = info[3].As<Napi::Array>();
  if (peersArray.Length() != static_cast<uint32_t>(worldSize)) {
    throw Napi::RangeError::New(env, "createCommunicator: peers has " + std::to_string(peersArray.Length()) +
                                         " entries but worldSize is " + std::to_string(worldSize));
  }
  const int64_t timeoutMs = TimeoutArg(info, 4, fn);
  std::vector<std::string> peers;
  std::string joined;
  for (uint32_t i = 0; i < peersArray.Length(); ++i) {
    Napi::Value p = peersArray.Get(i);
    if (!p.IsString()) throw Napi::TypeError::New(env, "createCommunicator: peers[" + std::to_string(i) + "] must be a string");
    peers.push_back(p.As<Napi::String>().Utf8Value());
    try {
      net::ParseHostPort(peers.back());
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, "createCommunicator: peers[" + std::to_string(i) + "]: " + e.what());
    }
    joined += peers.back() + "\n";
  }
  if (listener.fd < 0) {
    throw Napi::Error::New(env, "createCommunicator: the listener was closed or already used by another communicator");
  }
  CpuCommConfig config;
  config.rank = rank;
  config.worldSize = worldSize;
  config.peers = std::move(peers);
  config.listenFd = std::exchange(listener.fd, -1);
  config.bindHost = listener.host;
  config.commTag = HashBytes(joined.data(), joined.size());
  config.timeoutMs = timeoutMs;
  return ConnectAndResolve(env, std::make_unique<CpuCommunicator>(std::move(config)));
}

const gpu::NcclLibrary& RequireNcclOrThrow(Napi::Env env, const char* fn) {
  try {
    return gpu::RequireNccl();
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string(fn) + ": " + e.what());
  }
}

Napi::Value NcclGetUniqueId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const gpu::NcclLibrary& nccl = RequireNcclOrThrow(env, "ncclGetUniqueId");
  ncclUniqueId id{};
  ncclResult_t rc = nccl.getUniqueId(&id);
  if (rc != ncclSuccess) throw Napi::Error::New(env, gpu::NcclErrorText("ncclGetUniqueId", rc));
  Napi::Uint8Array out = Napi::Uint8Array::New(env, sizeof id.internal);
  std::memcpy(out.Data(), id.internal, sizeof id.internal);
  return out;
}

// ncclCommCreate(uniqueId: Uint8Array, rank, worldSize, device, timeoutMs): Promise<handle>
Napi::Value NcclCommCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "createCommunicator";
  RequireNcclOrThrow(env, fn);
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
      info[0].As<Napi::Uint8Array>().ByteLength() != MIST_NCCL_UNIQUE_ID_BYTES) {
    throw Napi::TypeError::New(env, "createCommunicator: uniqueId must be the 128-byte Uint8Array from ncclGetUniqueId()");
  }
  const int rank = IntArg(info, 1, fn, "rank");
  const int worldSize = IntArg(info, 2, fn, "worldSize");
  CheckRankAndSize(env, fn, rank, worldSize);
  const int device = IntArg(info, 3, fn, "device");
  if (device < 0 || device >= gpu::Runtime().deviceCount) {
    throw Napi::RangeError::New(env, "createCommunicator: device " + std::to_string(device) + " does not exist (" +
                                         std::to_string(gpu::Runtime().deviceCount) + " CUDA devices)");
  }
  const int64_t timeoutMs = TimeoutArg(info, 4, fn);
  ncclUniqueId id{};
  std::memcpy(id.internal, info[0].As<Napi::Uint8Array>().Data(), sizeof id.internal);
  return ConnectAndResolve(env, std::make_unique<NcclCommunicator>(id, rank, worldSize, device, timeoutMs));
}

void InitBackends(Napi::Env env, Napi::Object exports) {
  exports.Set("collectivesBackends", Napi::Function::New(env, Backends, "collectivesBackends"));
  exports.Set("cpuListen", Napi::Function::New(env, CpuListen, "cpuListen"));
  exports.Set("cpuListenerClose", Napi::Function::New(env, CpuListenerClose, "cpuListenerClose"));
  exports.Set("cpuCommCreate", Napi::Function::New(env, CpuCommCreate, "cpuCommCreate"));
  exports.Set("ncclGetUniqueId", Napi::Function::New(env, NcclGetUniqueId, "ncclGetUniqueId"));
  exports.Set("ncclCommCreate", Napi::Function::New(env, NcclCommCreate, "ncclCommCreate"));
}

const mist::Registrar registrar(&InitBackends);

}  // namespace
}  // namespace mist::collectives
