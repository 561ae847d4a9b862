// The JavaScript side of one communicator: owns the Communicator and its worker thread, runs each
// call there and settles the call's Promise back on the JavaScript thread through a thread-safe
// function made for that call (so only pending calls keep the event loop alive, and nothing is
// left to release when the environment shuts down). JavaScript holds the handle as a type-tagged
// External.
#pragma once
#include <napi.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "collectives/communicator.h"
#include "collectives/op_queue.h"

namespace mist::collectives {

class CommHandle;

// One submitted call, from the JavaScript thread to the worker and back.
struct PendingCall {
  CommHandle* owner = nullptr;
  Napi::Promise::Deferred deferred;
  std::vector<Napi::Reference<Napi::Value>> keepAlive;  // [0] is the handle itself
  std::string error;                                    // set by the worker on failure
  // Builds the resolution value on the JavaScript thread; undefined when empty.
  std::function<Napi::Value(Napi::Env, PendingCall&)> result;
  bool finalCall = false;  // destroy(): the worker thread ends after it

  explicit PendingCall(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

void DeliverCall(Napi::Env env, Napi::Function unused, std::nullptr_t* context, PendingCall* call);

class CommHandle {
 public:
  using Work = std::function<void(Communicator&, PendingCall&)>;

  explicit CommHandle(std::unique_ptr<Communicator> comm);
  ~CommHandle();

  // Wraps a new handle into a type-tagged External that frees it when collected.
  static Napi::External<CommHandle> Wrap(Napi::Env env, std::unique_ptr<Communicator> comm);
  // The handle behind a value from Wrap(); throws a TypeError naming `what` otherwise.
  static CommHandle& Unwrap(Napi::Value value, const char* what = "communicator");

  const Communicator& comm() const { return *comm_; }

  // Runs `work` on the worker thread after every earlier call. `self` is this handle's External;
  // it and `keepAlive` stay referenced until the Promise settles.
  Napi::Promise Submit(Napi::Env env, Napi::Value self, const std::vector<Napi::Value>& keepAlive, Work work);
  // Interrupts a blocked call, fails the queued ones, closes the communicator and ends the thread.
  Napi::Promise Destroy(Napi::Env env, Napi::Value self);

 private:
  friend void DeliverCall(Napi::Env, Napi::Function, std::nullptr_t*, PendingCall*);
  using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, PendingCall, &DeliverCall>;

  void Settled(bool finalCall);

  std::unique_ptr<Communicator> comm_;
  OpQueue queue_;
  bool destroyed_ = false;
  bool threadStopped_ = false;
};

}  // namespace mist::collectives
