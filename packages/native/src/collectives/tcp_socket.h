// Small POSIX TCP helpers for the CPU backend: address parsing, listening, connecting with retry,
// and exact reads/writes on non-blocking sockets bounded by a deadline.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "collectives/interrupter.h"

namespace mist::collectives::net {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

inline Deadline DeadlineAfterMs(int64_t ms) { return Clock::now() + std::chrono::milliseconds(ms); }
// Milliseconds left until `deadline` for poll(), at least 0, at most INT32_MAX.
int MsUntil(Deadline deadline);

struct HostPort {
  std::string host;
  uint16_t port = 0;
};

// "host:port", "1.2.3.4:5", "[::1]:5". Throws CommError on malformed input.
HostPort ParseHostPort(const std::string& address);
std::string FormatHostPort(const std::string& host, uint16_t port);

// Binds and listens (SO_REUSEADDR); port 0 picks a free port. Returns the fd, sets boundPort.
int Listen(const std::string& host, uint16_t port, uint16_t& boundPort);

// Connects to `address`, retrying while the peer is not listening yet, until the deadline.
// The returned socket is non-blocking with TCP_NODELAY set.
int ConnectWithRetry(const HostPort& address, Deadline deadline, const Interrupter& interrupter);

// Accepts one connection, waiting until the deadline; returns -1 on timeout. The returned socket
// is non-blocking with TCP_NODELAY set.
int AcceptUntil(int listenFd, Deadline deadline, const Interrupter& interrupter);

void ConfigureStreamSocket(int fd);  // non-blocking, TCP_NODELAY, close-on-exec

// Exact transfer on a non-blocking socket; returns false on timeout; throws CommError on a closed
// connection or a socket error (message without context, e.g. "connection closed by the peer").
bool WriteFully(int fd, const void* data, size_t bytes, Deadline deadline, const Interrupter& interrupter);
bool ReadFully(int fd, void* data, size_t bytes, Deadline deadline, const Interrupter& interrupter);

// Throws CommError("interrupted") when the interrupter fired.
void ThrowIfInterrupted(const Interrupter& interrupter);

std::string ErrnoText(int err);

}  // namespace mist::collectives::net
