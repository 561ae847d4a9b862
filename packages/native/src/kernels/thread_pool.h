// One pool of worker threads shared by every kernel. Sized to the cores
// (std::thread::hardware_concurrency), overridable with the environment variable MIST_NUM_THREADS
// or at run time with SetNumThreads (the benchmark compares 1 thread against all).
//
// Run(ntasks, fn) calls fn(task) for every task in [0, ntasks) and returns when all are done; the
// calling thread works too. Tasks are handed out dynamically, so kernels must make each task's
// output independent of which thread runs it: they partition outputs by task and combine per-task
// partial sums in task order, which makes every result bit-for-bit independent of the thread count.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace mist {
namespace kernels {

class ThreadPool {
 public:
  static ThreadPool& Get();

  int Size() const { return static_cast<int>(workers_.size()) + 1; }
  void SetSize(int threads);
  void Run(int64_t ntasks, const std::function<void(int64_t)>& fn);

  ~ThreadPool();

 private:
  explicit ThreadPool(int threads);
  void Start(int threads);
  void Stop();
  void WorkerLoop(uint64_t seen);
  void Drain();

  std::mutex submit_mu_;  // one Run at a time (the JS thread and a batch worker may both submit)
  std::mutex mu_;
  std::condition_variable wake_cv_;
  std::condition_variable done_cv_;
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> generation_{0};
  bool stop_ = false;
  std::atomic<int> busy_workers_{0};
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t ntasks_ = 0;
  std::atomic<int64_t> next_{0};
  std::exception_ptr error_;
};

/** Splits [0, n) into chunks of at least `grain` items and runs fn(begin, end) for each chunk. */
void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

/** Number of threads in the shared pool. */
inline int NumThreads() { return ThreadPool::Get().Size(); }

}  // namespace kernels
}  // namespace mist
