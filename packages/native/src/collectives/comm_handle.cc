#include "collectives/comm_handle.h"

namespace mist::collectives {
namespace {

const napi_type_tag kCommHandleTag = {0x6d6973742d636f6dULL, 0x6d68616e646c6531ULL};

}  // namespace

void DeliverCall(Napi::Env env, Napi::Function, std::nullptr_t*, PendingCall* call) {
  std::unique_ptr<PendingCall> owned(call);
  if (env == nullptr) return;  // the environment is shutting down
  Napi::HandleScope scope(env);
  if (call->error.empty() && call->result) {
    try {
      Napi::Value value = call->result(env, *call);
      call->deferred.Resolve(value);
    } catch (const Napi::Error& e) {
      call->deferred.Reject(e.Value());
    } catch (const std::exception& e) {
      call->deferred.Reject(Napi::Error::New(env, e.what()).Value());
    }
  } else if (call->error.empty()) {
    call->deferred.Resolve(env.Undefined());
  } else {
    call->deferred.Reject(Napi::Error::New(env, call->error).Value());
  }
  call->owner->Settled(call->finalCall);
}

CommHandle::CommHandle(std::unique_ptr<Communicator> comm) : comm_(std::move(comm)) {}

CommHandle::~CommHandle() {
  if (!threadStopped_) {
    comm_->Interrupt();
    queue_.Stop();
  }
}

Napi::External<CommHandle> CommHandle::Wrap(Napi::Env env, std::unique_ptr<Communicator> comm) {
  auto* handle = new CommHandle(std::move(comm));
  auto external = Napi::External<CommHandle>::New(env, handle, [](Napi::Env, CommHandle* h) { delete h; });
  external.TypeTag(&kCommHandleTag);
  return external;
}

CommHandle& CommHandle::Unwrap(Napi::Value value, const char* what) {
  if (!value.IsExternal() || !value.As<Napi::External<CommHandle>>().CheckTypeTag(&kCommHandleTag)) {
    throw Napi::TypeError::New(value.Env(), std::string("expected a ") + what + " handle");
  }
  return *value.As<Napi::External<CommHandle>>().Data();
}

Napi::Promise CommHandle::Submit(Napi::Env env, Napi::Value self, const std::vector<Napi::Value>& keepAlive, Work work) {
  auto* call = new PendingCall(env);
  Napi::Promise promise = call->deferred.Promise();
  if (destroyed_) {
    call->deferred.Reject(Napi::Error::New(env, "the communicator was destroyed").Value());
    delete call;
    return promise;
  }
  call->owner = this;
  call->keepAlive.push_back(Napi::Persistent(self));
  for (const Napi::Value& v : keepAlive) call->keepAlive.push_back(Napi::Persistent(v));
  Communicator* comm = comm_.get();
  Tsfn tsfn = Tsfn::New(env, "mist-collectives", 0, 1);
  queue_.Push([comm, call, work = std::move(work), tsfn]() mutable {
    try {
      work(*comm, *call);
    } catch (const std::exception& e) {
      call->error = e.what();
    }
    // Fails only while the environment shuts down; the call is then abandoned with it.
    tsfn.NonBlockingCall(call);
    tsfn.Release();
  });
  return promise;
}

Napi::Promise CommHandle::Destroy(Napi::Env env, Napi::Value self) {
  if (destroyed_) {
    auto deferred = Napi::Promise::Deferred::New(env);
    deferred.Resolve(env.Undefined());
    return deferred.Promise();
  }
  comm_->Interrupt();
  Napi::Promise promise = Submit(env, self, {}, [](Communicator& comm, PendingCall& call) {
    call.finalCall = true;
    comm.Close();
  });
  destroyed_ = true;
  return promise;
}

void CommHandle::Settled(bool finalCall) {
  if (finalCall && !threadStopped_) {
    queue_.Stop();  // the close task was the last one; the thread is about to return
    threadStopped_ = true;
  }
}

}  // namespace mist::collectives
