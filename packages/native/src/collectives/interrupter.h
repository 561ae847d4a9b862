// A wake-up file descriptor (eventfd) that a blocked poll() also watches, so another thread can
// make a waiting operation return promptly (used by destroy()).
#pragma once
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace mist::collectives {

class Interrupter {
 public:
  Interrupter() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~Interrupter() {
    if (fd_ >= 0) ::close(fd_);
  }
  Interrupter(const Interrupter&) = delete;
  Interrupter& operator=(const Interrupter&) = delete;

  void Trigger() {
    triggered_.store(true);
    uint64_t one = 1;
    if (fd_ >= 0) (void)!::write(fd_, &one, sizeof one);
  }
  bool triggered() const { return triggered_.load(); }
  int fd() const { return fd_; }

 private:
  int fd_;
  std::atomic<bool> triggered_{false};
};

}  // namespace mist::collectives
