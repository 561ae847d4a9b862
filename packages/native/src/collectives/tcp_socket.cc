#include "collectives/tcp_socket.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <algorithm>
#include <cstring>

#include "collectives/comm_error.h"

namespace mist::collectives::net {

std::string ErrnoText(int err) { return std::string(std::strerror(err)); }

int MsUntil(Deadline deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return 0;
  return left > INT_MAX ? INT_MAX : static_cast<int>(left);
}

void ThrowIfInterrupted(const Interrupter& interrupter) {
  if (interrupter.triggered()) throw CommError("the communicator was destroyed");
}

HostPort ParseHostPort(const std::string& address) {
  HostPort hp;
  std::string portText;
  if (!address.empty() && address[0] == '[') {
    size_t close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() || address[close + 1] != ':') {
      throw CommError("malformed address '" + address + "' (expected [ipv6]:port)");
    }
    hp.host = address.substr(1, close - 1);
    portText = address.substr(close + 2);
  } else {
    size_t colon = address.rfind(':');
    if (colon == std::string::npos || colon == 0) throw CommError("malformed address '" + address + "' (expected host:port)");
    hp.host = address.substr(0, colon);
    portText = address.substr(colon + 1);
  }
  char* end = nullptr;
  long port = std::strtol(portText.c_str(), &end, 10);
  if (portText.empty() || *end != '\0' || port < 0 || port > 65535) {
    throw CommError("malformed port in address '" + address + "'");
  }
  hp.port = static_cast<uint16_t>(port);
  return hp;
}

std::string FormatHostPort(const std::string& host, uint16_t port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

namespace {

struct AddrInfoList {
  addrinfo* head = nullptr;
  ~AddrInfoList() {
    if (head != nullptr) ::freeaddrinfo(head);
  }
};

void Resolve(const std::string& host, uint16_t port, bool passive, AddrInfoList& out) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &out.head);
  if (rc != 0) throw CommError("cannot resolve host '" + host + "': " + ::gai_strerror(rc));
}

// Waits for `events` on fd or for the interrupter; returns false on timeout.
bool WaitFor(int fd, short events, Deadline deadline, const Interrupter& interrupter) {
  for (;;) {
    ThrowIfInterrupted(interrupter);
    pollfd fds[2] = {{fd, events, 0}, {interrupter.fd(), POLLIN, 0}};
    int rc = ::poll(fds, 2, MsUntil(deadline));
    if (rc < 0) {
      if (errno == EINTR) continue;
      throw CommError("poll failed: " + ErrnoText(errno));
    }
    ThrowIfInterrupted(interrupter);
    if (rc == 0) return false;
    if (fds[0].revents != 0) return true;
  }
}

}  // namespace

void ConfigureStreamSocket(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
}

int Listen(const std::string& host, uint16_t port, uint16_t& boundPort) {
  AddrInfoList addrs;
  Resolve(host, port, true, addrs);
  std::string lastError = "no address to bind";
  for (addrinfo* ai = addrs.head; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      lastError = ErrnoText(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 128) == 0) {
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
      boundPort = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                                 : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
      return fd;
    }
    lastError = ErrnoText(errno);
    ::close(fd);
  }
  throw CommError("cannot listen on " + FormatHostPort(host, port) + ": " + lastError);
}

int ConnectWithRetry(const HostPort& address, Deadline deadline, const Interrupter& interrupter) {
  AddrInfoList addrs;
  Resolve(address.host, address.port, false, addrs);
  std::string lastError = "no address";
  int backoffMs = 5;
  for (;;) {
    for (addrinfo* ai = addrs.head; ai != nullptr; ai = ai->ai_next) {
      int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
      if (fd < 0) {
        lastError = ErrnoText(errno);
        continue;
      }
      ConfigureStreamSocket(fd);
      int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
      if (rc != 0 && errno == EINPROGRESS) {
        if (!WaitFor(fd, POLLOUT, deadline, interrupter)) {
          ::close(fd);
          throw CommError("timed out connecting to " + FormatHostPort(address.host, address.port));
        }
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        rc = err == 0 ? 0 : -1;
        errno = err;
      }
      if (rc == 0) return fd;
      lastError = ErrnoText(errno);
      ::close(fd);
    }
    // The peer may simply not be listening yet: retry with a growing pause until the deadline.
    if (MsUntil(deadline) == 0) {
      throw CommError("cannot connect to " + FormatHostPort(address.host, address.port) + ": " + lastError);
    }
    pollfd wake{interrupter.fd(), POLLIN, 0};
    ::poll(&wake, 1, std::min(backoffMs, MsUntil(deadline)));
    ThrowIfInterrupted(interrupter);
    backoffMs = std::min(backoffMs * 2, 200);
  }
}

int AcceptUntil(int listenFd, Deadline deadline, const Interrupter& interrupter) {
  for (;;) {
    if (!WaitFor(listenFd, POLLIN, deadline, interrupter)) return -1;
    int fd = ::accept4(listenFd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      ConfigureStreamSocket(fd);
      return fd;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
      throw CommError("accept failed: " + ErrnoText(errno));
    }
  }
}

bool WriteFully(int fd, const void* data, size_t bytes, Deadline deadline, const Interrupter& interrupter) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    ssize_t n = ::send(fd, p, bytes, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      p += n;
      bytes -= static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      if (!WaitFor(fd, POLLOUT, deadline, interrupter)) return false;
      continue;
    }
    throw CommError("connection lost (" + ErrnoText(errno) + ")");
  }
  return true;
}

bool ReadFully(int fd, void* data, size_t bytes, Deadline deadline, const Interrupter& interrupter) {
  char* p = static_cast<char*>(data);
  while (bytes > 0) {
    ssize_t n = ::recv(fd, p, bytes, MSG_DONTWAIT);
    if (n > 0) {
      p += n;
      bytes -= static_cast<size_t>(n);
      continue;
    }
    if (n == 0) throw CommError("connection closed by the peer");
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      if (!WaitFor(fd, POLLIN, deadline, interrupter)) return false;
      continue;
    }
    throw CommError("connection lost (" + ErrnoText(errno) + ")");
  }
  return true;
}

}  // namespace mist::collectives::net
