#include "kernels/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MIST_CPU_RELAX() _mm_pause()
#else
#define MIST_CPU_RELAX() std::this_thread::yield()
#endif

namespace mist {
namespace kernels {

namespace {

thread_local bool in_pool_task = false;

int DefaultThreads() {
  if (const char* env = std::getenv("MIST_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

}  // namespace

ThreadPool& ThreadPool::Get() {
  static ThreadPool pool(DefaultThreads());
  return pool;
}

ThreadPool::ThreadPool(int threads) { Start(threads); }

ThreadPool::~ThreadPool() { Stop(); }

void ThreadPool::Start(int threads) {
  stop_ = false;
  // Workers start from the current generation, captured here: a worker that only begins running
  // after the first Run has bumped the generation must still take part in that Run.
  const uint64_t start_gen = generation_.load();
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, start_gen] { WorkerLoop(start_gen); });
}

void ThreadPool::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  wake_cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

void ThreadPool::SetSize(int threads) {
  if (threads < 1) threads = 1;
  std::lock_guard<std::mutex> submit(submit_mu_);
  if (threads == Size()) return;
  Stop();
  Start(threads);
}

void ThreadPool::Drain() {
  const bool was = in_pool_task;
  in_pool_task = true;
  for (;;) {
    int64_t t = next_.fetch_add(1);
    if (t >= ntasks_) break;
    try {
      (*fn_)(t);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = std::current_exception();
    }
  }
  in_pool_task = was;
}

// How long a thread spins before it sleeps: a worker waiting for the next kernel, and the caller
// waiting for the workers to finish theirs. Kernels come back to back (a layer's batch is dozens of
// calls a few microseconds apart), and a condition-variable wake-up costs tens of microseconds, as
// much as a small kernel; beyond this the thread sleeps, so an idle pool costs no CPU.
namespace {

constexpr auto kSpin = std::chrono::microseconds(50);

template <typename Done>
void SpinUntil(const Done& done) {
  if (done()) return;
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return;
      MIST_CPU_RELAX();
    }
    if (std::chrono::steady_clock::now() >= until) return;
  }
}

}  // namespace

void ThreadPool::WorkerLoop(uint64_t seen) {
  for (;;) {
    SpinUntil([&] { return generation_.load(std::memory_order_acquire) != seen; });
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_cv_.wait(lock, [&] { return generation_.load() != seen; });
      seen = generation_.load();
      if (stop_) return;
    }
    Drain();
    if (busy_workers_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu_);
      done_cv_.notify_one();
    }
  }
}

void ThreadPool::Run(int64_t ntasks, const std::function<void(int64_t)>& fn) {
  if (ntasks <= 0) return;
  // Serial paths: one task, a one-thread pool, or a task that itself asks for parallel work.
  if (ntasks == 1 || workers_.empty() || in_pool_task) {
    for (int64_t t = 0; t < ntasks; ++t) fn(t);
    return;
  }
  std::lock_guard<std::mutex> submit(submit_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = &fn;
    ntasks_ = ntasks;
    next_.store(0);
    error_ = nullptr;
    busy_workers_.store(static_cast<int>(workers_.size()));
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_cv_.notify_all();
  Drain();
  std::exception_ptr err;
  SpinUntil([&] { return busy_workers_.load(std::memory_order_acquire) == 0; });
  {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return busy_workers_.load() == 0; });
    fn_ = nullptr;
    err = error_;
    error_ = nullptr;
  }
  if (err) std::rethrow_exception(err);
}

void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int threads = NumThreads();
  // At most 4 chunks per thread, none smaller than `grain`. Callers write disjoint outputs per
  // index, so the chunking (which depends on the thread count) never changes a result.
  int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, static_cast<int64_t>(threads) * 4);
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
  const int64_t size = (n + chunks - 1) / chunks;
  chunks = (n + size - 1) / size;
  ThreadPool::Get().Run(chunks, [&](int64_t c) {
    const int64_t b = c * size;
    fn(b, std::min(n, b + size));
  });
}

}  // namespace kernels
}  // namespace mist
