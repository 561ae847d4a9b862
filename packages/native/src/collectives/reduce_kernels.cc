#include "collectives/reduce_kernels.h"

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace mist::collectives {
namespace {

// Fixed helper threads that run parts of one parallel loop at a time per caller; several
// communicator threads may submit loops concurrently.
class ReducePool {
 public:
  static ReducePool& Instance() {
    static ReducePool* pool = new ReducePool();  // never destroyed: helpers live until exit
    return *pool;
  }

  size_t helpers() const { return threads_.size(); }

  // Runs body(part) for part in [0, parts), the caller taking part 0.
  void Run(size_t parts, const std::function<void(size_t)>& body) {
    struct Job {
      std::mutex mu;
      std::condition_variable cv;
      size_t remaining;
    } job;
    job.remaining = parts - 1;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t p = 1; p < parts; ++p) {
        tasks_.push_back([&job, &body, p] {
          body(p);
          std::lock_guard<std::mutex> jl(job.mu);
          if (--job.remaining == 0) job.cv.notify_one();
        });
      }
    }
    cv_.notify_all();
    body(0);
    std::unique_lock<std::mutex> jl(job.mu);
    job.cv.wait(jl, [&job] { return job.remaining == 0; });
  }

 private:
  ReducePool() {
    unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    unsigned count = std::min(hw, 8u) - 1;
    for (unsigned i = 0; i < count; ++i) {
      threads_.emplace_back([this] { Loop(); });
      threads_.back().detach();
    }
  }

  void Loop() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !tasks_.empty(); });
        task = std::move(tasks_.back());
        tasks_.pop_back();
      }
      task();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::function<void()>> tasks_;
  std::vector<std::thread> threads_;
};

void ReduceRange(float* __restrict dst, const float* __restrict src, size_t count, ReduceOp op) {
  if (op == ReduceOp::kMax) {
    for (size_t i = 0; i < count; ++i) dst[i] = std::max(dst[i], src[i]);
  } else {
    for (size_t i = 0; i < count; ++i) dst[i] += src[i];
  }
}

void ForEachPart(size_t count, const std::function<void(size_t, size_t)>& body) {
  ReducePool& pool = ReducePool::Instance();
  size_t parts = std::min<size_t>(pool.helpers() + 1, count / (kParallelReduceMinElements / 4));
  if (count < kParallelReduceMinElements || parts <= 1) {
    body(0, count);
    return;
  }
  const size_t per = (count + parts - 1) / parts;
  pool.Run(parts, [&](size_t p) {
    size_t begin = p * per;
    size_t end = std::min(count, begin + per);
    if (begin < end) body(begin, end - begin);
  });
}

}  // namespace

void ReduceInto(float* dst, const float* src, size_t count, ReduceOp op) {
  ForEachPart(count, [&](size_t begin, size_t n) { ReduceRange(dst + begin, src + begin, n, op); });
}

void DivideBy(float* dst, size_t count, float divisor) {
  ForEachPart(count, [&](size_t begin, size_t n) {
    float* __restrict d = dst + begin;
    for (size_t i = 0; i < n; ++i) d[i] = d[i] / divisor;
  });
}

}  // namespace mist::collectives
