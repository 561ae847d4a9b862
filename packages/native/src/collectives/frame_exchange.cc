#include "collectives/frame_exchange.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "collectives/comm_error.h"
#include "collectives/tcp_socket.h"
#include "collectives/wire_format.h"

namespace mist::collectives {
namespace {

using net::Clock;

struct RecvState {
  size_t index = 0;
  size_t headerGot = 0;
  size_t payloadGot = 0;
  wire::FrameHeader header{};
};

struct SendState {
  size_t index = 0;
  size_t sent = 0;  // of header + payload of the current frame
  wire::FrameHeader header{};
};

struct PeerState {
  RecvState recv;
  SendState send;
  bool watchForAbort = true;  // see WatchedForAbort()
};

bool WouldBlock(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

[[noreturn]] void ThrowLost(const Connection& conn, int err) {
  if (err == EPIPE || err == ECONNRESET) throw CommError("connection to " + conn.Describe() + " was closed");
  throw CommError("connection to " + conn.Describe() + " failed: " + net::ErrnoText(err));
}

[[noreturn]] void ThrowClosed(const Connection& conn) {
  throw CommError("connection to " + conn.Describe() + " was closed");
}

// Reads the text of an abort notice whose header was already consumed, and throws it.
[[noreturn]] void ThrowPeerAbort(const Connection& conn, uint64_t textBytes, const ExchangeContext& ctx) {
  std::string text(static_cast<size_t>(std::min<uint64_t>(textBytes, wire::kMaxAbortTextBytes)), '\0');
  bool complete = false;
  try {
    complete = net::ReadFully(conn.fd, text.data(), text.size(), net::DeadlineAfterMs(std::min<int64_t>(ctx.timeoutMs, 2000)),
                              *ctx.interrupter);
  } catch (const CommError&) {
  }
  if (!complete) text = "(reason not received)";
  throw CommError(conn.Describe() + " aborted: " + text);
}

void CheckHeader(const wire::FrameHeader& h, const RecvFrame& f, const Connection& conn, const ExchangeContext& ctx) {
  if (h.magic != wire::kFrameMagic) {
    throw CommError("received a corrupt frame from " + conn.Describe() + " (bad magic)");
  }
  if (h.kind == wire::kAbort) ThrowPeerAbort(conn, h.bytes, ctx);
  if (h.kind != wire::kData) throw CommError("received an unknown frame kind from " + conn.Describe());
  if (h.opcode != f.opcode) {
    throw CommError(conn.Describe() + " is running " + wire::OpCodeName(h.opcode) + " while this rank runs " +
                    wire::OpCodeName(f.opcode) + " (the ranks issued operations in different orders)");
  }
  if (h.bytes != f.bytes) {
    throw CommError(conn.Describe() + " sent " + std::to_string(h.bytes) + " bytes where this rank expects " +
                    std::to_string(f.bytes) + " (buffer sizes differ between the ranks)");
  }
}

// Receives as much as is available; returns whether any byte arrived.
bool PumpRecv(PeerTraffic& t, RecvState& s, size_t& recvCompleted, const ExchangeContext& ctx) {
  bool progressed = false;
  while (s.index < t.recvs.size()) {
    RecvFrame& f = t.recvs[s.index];
    if (s.headerGot < sizeof s.header) {
      ssize_t n = ::recv(t.conn->fd, reinterpret_cast<char*>(&s.header) + s.headerGot, sizeof s.header - s.headerGot, MSG_DONTWAIT);
      if (n == 0) ThrowClosed(*t.conn);
      if (n < 0) {
        if (WouldBlock(errno)) return progressed;
        ThrowLost(*t.conn, errno);
      }
      s.headerGot += static_cast<size_t>(n);
      ctx.bytesReceived->fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
      progressed = true;
      if (s.headerGot < sizeof s.header) continue;
      CheckHeader(s.header, f, *t.conn, ctx);
    }
    if (s.payloadGot < f.bytes) {
      ssize_t n = ::recv(t.conn->fd, static_cast<char*>(f.data) + s.payloadGot, f.bytes - s.payloadGot, MSG_DONTWAIT);
      if (n == 0) ThrowClosed(*t.conn);
      if (n < 0) {
        if (WouldBlock(errno)) return progressed;
        ThrowLost(*t.conn, errno);
      }
      s.payloadGot += static_cast<size_t>(n);
      ctx.bytesReceived->fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
      progressed = true;
      if (s.payloadGot < f.bytes) continue;
    }
    if (f.onComplete) f.onComplete();
    s = RecvState{s.index + 1};
    ++recvCompleted;
    progressed = true;
  }
  return progressed;
}

bool SendReady(const PeerTraffic& t, const SendState& s, size_t recvCompleted) {
  return s.index < t.sends.size() && t.sends[s.index].afterRecvs <= recvCompleted;
}

// Sends as much as the socket takes; returns whether any byte left.
bool PumpSend(PeerTraffic& t, SendState& s, size_t recvCompleted, const ExchangeContext& ctx) {
  bool progressed = false;
  while (SendReady(t, s, recvCompleted)) {
    const SendFrame& f = t.sends[s.index];
    const size_t total = sizeof s.header + f.bytes;
    if (s.sent == 0) {
      s.header = wire::FrameHeader{wire::kFrameMagic, wire::kData, f.opcode, f.bytes};
      t.conn->outFrameRemaining = total;
    }
    iovec iov[2];
    int iovcnt = 0;
    if (s.sent < sizeof s.header) {
      iov[iovcnt++] = {reinterpret_cast<char*>(&s.header) + s.sent, sizeof s.header - s.sent};
      if (f.bytes > 0) iov[iovcnt++] = {const_cast<void*>(f.data), f.bytes};
    } else {
      size_t off = s.sent - sizeof s.header;
      iov[iovcnt++] = {static_cast<char*>(const_cast<void*>(f.data)) + off, f.bytes - off};
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(iovcnt);
    ssize_t n = ::sendmsg(t.conn->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (WouldBlock(errno)) return progressed;
      ThrowLost(*t.conn, errno);
    }
    s.sent += static_cast<size_t>(n);
    t.conn->outFrameRemaining -= static_cast<uint64_t>(n);
    ctx.bytesSent->fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    progressed = progressed || n > 0;
    if (s.sent == total) s = SendState{s.index + 1};
  }
  return progressed;
}

// A peer we only send to never sends to us during this operation, so bytes arriving from it are
// either an abort notice (the peer failed and stopped reading; fail now instead of timing out),
// a closed connection, or the start of a later operation's frame (stop watching).
void CheckSendOnlyPeer(PeerTraffic& t, PeerState& st, const ExchangeContext& ctx) {
  wire::FrameHeader h{};
  ssize_t n = ::recv(t.conn->fd, &h, sizeof h, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) ThrowClosed(*t.conn);
  if (n < 0) {
    if (WouldBlock(errno)) return;
    ThrowLost(*t.conn, errno);
  }
  if (static_cast<size_t>(n) == sizeof h && h.magic == wire::kFrameMagic && h.kind == wire::kAbort) {
    (void)::recv(t.conn->fd, &h, sizeof h, MSG_DONTWAIT);
    ThrowPeerAbort(*t.conn, h.bytes, ctx);
  }
  st.watchForAbort = false;
}

[[noreturn]] void ThrowTimeout(const std::vector<PeerTraffic>& traffic, const std::vector<PeerState>& states,
                               const ExchangeContext& ctx) {
  std::string prefix = "timed out after " + std::to_string(ctx.timeoutMs) + " ms without progress ";
  for (size_t i = 0; i < traffic.size(); ++i) {
    if (states[i].recv.index < traffic[i].recvs.size()) {
      throw CommError(prefix + "waiting for data from " + traffic[i].conn->Describe());
    }
  }
  for (size_t i = 0; i < traffic.size(); ++i) {
    if (states[i].send.index < traffic[i].sends.size()) {
      throw CommError(prefix + "sending to " + traffic[i].conn->Describe());
    }
  }
  throw CommError(prefix);
}

}  // namespace

void ExchangeFrames(std::vector<PeerTraffic>& traffic, const ExchangeContext& ctx) {
  std::vector<PeerState> states(traffic.size());
  std::vector<pollfd> fds;
  std::vector<size_t> fdOwner;
  size_t recvCompleted = 0;
  auto lastProgress = Clock::now();
  for (;;) {
    net::ThrowIfInterrupted(*ctx.interrupter);
    bool progressed = false;
    bool done = true;
    for (size_t i = 0; i < traffic.size(); ++i) {
      progressed |= PumpRecv(traffic[i], states[i].recv, recvCompleted, ctx);
    }
    for (size_t i = 0; i < traffic.size(); ++i) {
      progressed |= PumpSend(traffic[i], states[i].send, recvCompleted, ctx);
      done = done && states[i].recv.index == traffic[i].recvs.size() && states[i].send.index == traffic[i].sends.size();
    }
    if (done) return;
    if (progressed) {
      lastProgress = Clock::now();
      continue;
    }

    fds.clear();
    fdOwner.clear();
    for (size_t i = 0; i < traffic.size(); ++i) {
      const bool recvPending = states[i].recv.index < traffic[i].recvs.size();
      const bool sendPending = states[i].send.index < traffic[i].sends.size();
      short events = 0;
      if (recvPending || (sendPending && states[i].watchForAbort)) events |= POLLIN;
      if (SendReady(traffic[i], states[i].send, recvCompleted)) events |= POLLOUT;
      if (events == 0) continue;
      fds.push_back({traffic[i].conn->fd, events, 0});
      fdOwner.push_back(i);
    }
    fds.push_back({ctx.interrupter->fd(), POLLIN, 0});

    auto idleMs = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - lastProgress).count();
    if (idleMs >= ctx.timeoutMs) ThrowTimeout(traffic, states, ctx);
    int rc = ::poll(fds.data(), fds.size(), static_cast<int>(ctx.timeoutMs - idleMs));
    if (rc < 0 && errno != EINTR) throw CommError(std::string("poll failed: ") + net::ErrnoText(errno));
    for (size_t k = 0; k + 1 < fds.size() && rc > 0; ++k) {
      const size_t i = fdOwner[k];
      const bool sendOnly = states[i].recv.index == traffic[i].recvs.size();
      if (sendOnly && states[i].watchForAbort && (fds[k].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        CheckSendOnlyPeer(traffic[i], states[i], ctx);
      }
    }
  }
}

void SendAbortNotices(std::vector<Connection>& conns, const std::string& reason, int64_t timeoutMs) {
  const std::string text = reason.substr(0, wire::kMaxAbortTextBytes);
  struct Pending {
    Connection* conn;
    uint64_t padding;
    std::string notice;  // header + text
    size_t noticeSent = 0;
  };
  std::vector<Pending> pending;
  for (Connection& c : conns) {
    if (c.fd < 0) continue;
    wire::FrameHeader h{wire::kFrameMagic, wire::kAbort, 0, text.size()};
    std::string notice(reinterpret_cast<const char*>(&h), sizeof h);
    notice += text;
    pending.push_back({&c, c.outFrameRemaining, std::move(notice)});
  }
  static const char kZeros[64 * 1024] = {};
  const auto deadline = net::DeadlineAfterMs(std::min<int64_t>(timeoutMs, 1000));
  std::vector<pollfd> fds;
  std::vector<Pending*> owners;
  for (;;) {
    fds.clear();
    owners.clear();
    for (Pending& p : pending) {
      if (p.conn->fd < 0) continue;
      for (;;) {
        ssize_t n;
        if (p.padding > 0) {
          n = ::send(p.conn->fd, kZeros, std::min<uint64_t>(p.padding, sizeof kZeros), MSG_NOSIGNAL | MSG_DONTWAIT);
        } else if (p.noticeSent < p.notice.size()) {
          n = ::send(p.conn->fd, p.notice.data() + p.noticeSent, p.notice.size() - p.noticeSent, MSG_NOSIGNAL | MSG_DONTWAIT);
        } else {
          break;
        }
        if (n < 0) {
          if (WouldBlock(errno)) {
            fds.push_back({p.conn->fd, POLLOUT, 0});
            owners.push_back(&p);
          } else {
            p.padding = 0;  // the peer is gone; nothing more to tell it
            p.noticeSent = p.notice.size();
          }
          break;
        }
        if (p.padding > 0) {
          p.padding -= static_cast<uint64_t>(n);
          p.conn->outFrameRemaining -= static_cast<uint64_t>(n);
        } else {
          p.noticeSent += static_cast<size_t>(n);
        }
      }
    }
    if (fds.empty() || net::MsUntil(deadline) == 0) break;
    ::poll(fds.data(), fds.size(), net::MsUntil(deadline));
  }
  // Keep the descriptors open (closing with unread input would reset the connection and could
  // destroy the notice before the peer reads it); only signal end of data.
  for (Connection& c : conns) {
    if (c.fd >= 0) ::shutdown(c.fd, SHUT_WR);
  }
}

}  // namespace mist::collectives
