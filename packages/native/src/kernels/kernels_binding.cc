// JavaScript face of the kernels. Every kernel is registered by name in the op table; JavaScript
// looks the ids up once (kernelOpNames) and then either
//   - calls one kernel synchronously: kernelRun(id, buffers, ints, floats), the kernel itself
//     spreading its work over the thread pool (fine for a single call, ~1 us of overhead), or
//   - submits a batch: kernelRunBatch([[id, buffers, ints, floats], ...]) returns a Promise and runs
//     the kernels in order on a libuv worker thread (N-API AsyncWorker), off the JavaScript thread,
//     with one thread hop per batch instead of per kernel. The stage module records a layer's
//     kernels into one batch, so the event loop stays free (for collectives) while they run.
// Buffers are Float32Array or Int32Array (or null for an optional one); a batch keeps a reference
// to its calls array, and so to every buffer in it, until it settles, so none can be collected
// while a worker writes into it. (The JavaScript side must not change the array meanwhile.)
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "addon/registry.h"
#include "kernels/matmul.h"
#include "kernels/op_args.h"
#include "kernels/thread_pool.h"

namespace mist {
namespace kernels {

double MeasureFmaPeak(double seconds);  // peak.cc

namespace {

struct ParsedOp {
  OpFn fn;
  OpArgs args;
};

// Kernel trace (kernelTraceStart / kernelTraceStop): calls and seconds per kernel name, and per
// batch the time on the worker thread, so a step's wall time can be split into kernel time and
// everything around it. Off by default; when off, running a kernel costs one relaxed load more.
struct TraceEntry {
  int64_t calls = 0;
  int64_t ns = 0;
};
std::atomic<bool> g_trace{false};
std::mutex g_trace_mutex;
std::map<std::string, TraceEntry> g_trace_table;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void TraceAdd(const std::string& name, int64_t ns) {
  std::lock_guard<std::mutex> lock(g_trace_mutex);
  TraceEntry& e = g_trace_table[name];
  e.calls += 1;
  e.ns += ns;
}

void RunTraced(ParsedOp& op) {
  if (!g_trace.load(std::memory_order_relaxed)) {
    op.fn(op.args);
    return;
  }
  const int64_t t0 = NowNs();
  op.fn(op.args);
  TraceAdd(op.args.op, NowNs() - t0);
}

ParsedOp ParseOp(const Napi::Env& env, const Napi::Value& id_v, const Napi::Value& bufs_v, const Napi::Value& ints_v,
               const Napi::Value& floats_v) {
  const auto& table = OpTable();
  if (!id_v.IsNumber()) throw Napi::TypeError::New(env, "kernel id must be a number");
  const int64_t id = id_v.As<Napi::Number>().Int64Value();
  if (id < 0 || id >= static_cast<int64_t>(table.size())) throw Napi::RangeError::New(env, "unknown kernel id " + std::to_string(id));
  ParsedOp parsed{table[static_cast<size_t>(id)].fn, {}};
  OpArgs& args = parsed.args;
  args.op = table[static_cast<size_t>(id)].name;
  if (!bufs_v.IsArray() || !ints_v.IsArray() || !floats_v.IsArray()) {
    throw Napi::TypeError::New(env, args.op + ": buffers, ints and floats must be arrays");
  }
  auto bufs = bufs_v.As<Napi::Array>();
  args.bufs.resize(bufs.Length());
  for (uint32_t i = 0; i < bufs.Length(); ++i) {
    Napi::Value b = bufs.Get(i);
    Buf& out = args.bufs[i];
    if (b.IsNull() || b.IsUndefined()) continue;
    if (!b.IsTypedArray()) throw Napi::TypeError::New(env, args.op + ": buffer " + std::to_string(i) + " is not a typed array");
    auto ta = b.As<Napi::TypedArray>();
    if (ta.TypedArrayType() == napi_float32_array) {
      auto f = b.As<Napi::Float32Array>();
      out.kind = BufKind::kF32;
      out.data = f.Data();
      out.length = f.ElementLength();
    } else if (ta.TypedArrayType() == napi_int32_array) {
      auto f = b.As<Napi::Int32Array>();
      out.kind = BufKind::kI32;
      out.data = f.Data();
      out.length = f.ElementLength();
    } else {
      throw Napi::TypeError::New(env, args.op + ": buffer " + std::to_string(i) + " must be a Float32Array or Int32Array");
    }
  }
  auto ints = ints_v.As<Napi::Array>();
  args.ints.resize(ints.Length());
  for (uint32_t i = 0; i < ints.Length(); ++i) args.ints[i] = ints.Get(i).As<Napi::Number>().Int64Value();
  auto floats = floats_v.As<Napi::Array>();
  args.floats.resize(floats.Length());
  for (uint32_t i = 0; i < floats.Length(); ++i) args.floats[i] = floats.Get(i).As<Napi::Number>().DoubleValue();
  return parsed;
}

Napi::Value OpNames(const Napi::CallbackInfo& info) {
  const auto& table = OpTable();
  auto arr = Napi::Array::New(info.Env(), table.size());
  for (size_t i = 0; i < table.size(); ++i) arr.Set(static_cast<uint32_t>(i), Napi::String::New(info.Env(), table[i].name));
  return arr;
}

// kernelRun(id, buffers, ints, floats): runs one kernel now, on the calling thread + the pool.
Napi::Value RunOne(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ParsedOp op = ParseOp(env, info[0], info[1], info[2], info[3]);
  try {
    RunTraced(op);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  return env.Undefined();
}

class BatchWorker : public Napi::AsyncWorker {
 public:
  BatchWorker(Napi::Env env, std::vector<ParsedOp> ops, Napi::Array calls)
      : Napi::AsyncWorker(env, "mist.kernels.batch"), deferred_(Napi::Promise::Deferred::New(env)), ops_(std::move(ops)),
        keep_(Napi::Persistent(static_cast<Napi::Object>(calls))) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    const bool trace = g_trace.load(std::memory_order_relaxed);
    const int64_t t0 = trace ? NowNs() : 0;
    for (size_t i = 0; i < ops_.size(); ++i) {
      try {
        RunTraced(ops_[i]);
      } catch (const std::exception& e) {
        SetError("kernel batch, op " + std::to_string(i) + ": " + e.what());
        return;
      }
    }
    if (trace) TraceAdd("(batch)", NowNs() - t0);
  }
  void OnOK() override {
    keep_.Reset();
    deferred_.Resolve(Env().Undefined());
  }
  void OnError(const Napi::Error& e) override {
    keep_.Reset();
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<ParsedOp> ops_;
  // The calls array, which references every buffer of the batch: one reference keeps them all.
  Napi::ObjectReference keep_;
};

// kernelRunBatch([[id, buffers, ints, floats], ...]) -> Promise<void>: runs the kernels in order
// on a libuv worker thread. Arguments are checked per kernel when it runs; a failing kernel rejects
// the promise and the kernels after it do not run.
Napi::Value RunBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw Napi::TypeError::New(env, "kernelRunBatch expects an array of ops");
  auto list = info[0].As<Napi::Array>();
  std::vector<ParsedOp> ops;
  ops.reserve(list.Length());
  for (uint32_t i = 0; i < list.Length(); ++i) {
    Napi::Value item = list.Get(i);
    if (!item.IsArray()) throw Napi::TypeError::New(env, "kernel batch op " + std::to_string(i) + " must be [id, buffers, ints, floats]");
    auto t = item.As<Napi::Array>();
    ops.push_back(ParseOp(env, t.Get(0u), t.Get(1u), t.Get(2u), t.Get(3u)));
  }
  auto* worker = new BatchWorker(env, std::move(ops), list);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value TraceStart(const Napi::CallbackInfo& info) {
  {
    std::lock_guard<std::mutex> lock(g_trace_mutex);
    g_trace_table.clear();
  }
  g_trace.store(true);
  return info.Env().Undefined();
}

// kernelTraceStop() -> [{op, calls, seconds}], and tracing stops; '(batch)' is the batches' time on
// their worker thread (its calls are the number of batches).
Napi::Value TraceStop(const Napi::CallbackInfo& info) {
  g_trace.store(false);
  std::lock_guard<std::mutex> lock(g_trace_mutex);
  auto arr = Napi::Array::New(info.Env(), g_trace_table.size());
  uint32_t i = 0;
  for (const auto& [name, e] : g_trace_table) {
    auto o = Napi::Object::New(info.Env());
    o.Set("op", name);
    o.Set("calls", static_cast<double>(e.calls));
    o.Set("seconds", static_cast<double>(e.ns) / 1e9);
    arr.Set(i++, o);
  }
  g_trace_table.clear();
  return arr;
}

Napi::Value Threads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), NumThreads()); }

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  const int n = info[0].As<Napi::Number>().Int32Value();
  if (n < 1) throw Napi::RangeError::New(info.Env(), "thread count must be at least 1");
  ThreadPool::Get().SetSize(n);
  return info.Env().Undefined();
}

Napi::Value GemmConfigJs(const Napi::CallbackInfo& info) {
  const GemmConfig c = GetGemmConfig();
  auto o = Napi::Object::New(info.Env());
  o.Set("mr", c.mr);
  o.Set("nr", c.nr);
  o.Set("kc", c.kc);
  o.Set("mc", c.mc);
  o.Set("nc", c.nc);
  o.Set("vectorFloats", c.vector_floats);
  return o;
}

Napi::Value FmaPeak(const Napi::CallbackInfo& info) {
  const double seconds = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0.2;
  return Napi::Number::New(info.Env(), MeasureFmaPeak(seconds));
}

void InitKernels(Napi::Env env, Napi::Object exports) {
  exports.Set("kernelOpNames", Napi::Function::New(env, OpNames, "kernelOpNames"));
  exports.Set("kernelRun", Napi::Function::New(env, RunOne, "kernelRun"));
  exports.Set("kernelRunBatch", Napi::Function::New(env, RunBatch, "kernelRunBatch"));
  exports.Set("kernelTraceStart", Napi::Function::New(env, TraceStart, "kernelTraceStart"));
  exports.Set("kernelTraceStop", Napi::Function::New(env, TraceStop, "kernelTraceStop"));
  exports.Set("kernelThreads", Napi::Function::New(env, Threads, "kernelThreads"));
  exports.Set("kernelSetThreads", Napi::Function::New(env, SetThreads, "kernelSetThreads"));
  exports.Set("kernelGemmConfig", Napi::Function::New(env, GemmConfigJs, "kernelGemmConfig"));
  exports.Set("kernelFmaPeak", Napi::Function::New(env, FmaPeak, "kernelFmaPeak"));
}

mist::Registrar reg(&InitKernels);

}  // namespace
}  // namespace kernels
}  // namespace mist
