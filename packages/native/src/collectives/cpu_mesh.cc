#include "collectives/cpu_mesh.h"

#include <unistd.h>

#include <algorithm>

#include "collectives/comm_error.h"
#include "collectives/tcp_socket.h"
#include "collectives/wire_format.h"

namespace mist::collectives {

uint64_t HashBytes(const void* data, size_t bytes, uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = seed;
  for (size_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

namespace {

constexpr int64_t kHandshakeMs = 5000;  // a connected peer answers at once; this only bounds strays

void CloseAll(std::vector<Connection>& conns) {
  for (Connection& c : conns) {
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
  }
}

int ConnectToLowerRank(const MeshConfig& cfg, const Connection& peer, net::Deadline deadline, const Interrupter& interrupter) {
  int fd = -1;
  try {
    fd = net::ConnectWithRetry(net::ParseHostPort(peer.address), deadline, interrupter);
    wire::Hello hello{wire::kHelloMagic, wire::kProtocolVersion, cfg.commTag, cfg.rank, cfg.worldSize};
    wire::HelloAck ack{};
    if (!net::WriteFully(fd, &hello, sizeof hello, deadline, interrupter) ||
        !net::ReadFully(fd, &ack, sizeof ack, deadline, interrupter)) {
      throw CommError("no handshake answer before the timeout");
    }
    if (ack.magic != wire::kHelloMagic) throw CommError("the listener there is not a Mist communicator");
    if (ack.status == wire::kHelloWrongCommunicator) {
      throw CommError("it belongs to a different communicator (are the peers lists and worldSize equal on all ranks?)");
    }
    if (ack.status != wire::kHelloOk) throw CommError("it rejected rank " + std::to_string(cfg.rank));
    return fd;
  } catch (const CommError& e) {
    if (fd >= 0) ::close(fd);
    throw CommError("cannot connect to " + peer.Describe() + ": " + e.what());
  }
}

std::string MissingRanks(const std::vector<Connection>& conns, int rank) {
  std::string list;
  for (size_t q = static_cast<size_t>(rank) + 1; q < conns.size(); ++q) {
    if (conns[q].fd >= 0) continue;
    list += (list.empty() ? "" : ", ") + std::to_string(q) + " (" + conns[q].address + ")";
  }
  return list;
}

// Accepts one connection and checks its hello; returns false (and drops it) for a stray one.
bool AcceptHigherRank(int listenFd, const MeshConfig& cfg, std::vector<Connection>& conns, net::Deadline deadline,
                      const Interrupter& interrupter) {
  int fd = net::AcceptUntil(listenFd, deadline, interrupter);
  if (fd < 0) {
    throw CommError("timed out after " + std::to_string(cfg.timeoutMs) + " ms waiting for peer rank(s) " +
                    MissingRanks(conns, cfg.rank) + " to connect");
  }
  wire::Hello hello{};
  bool ok = false;
  try {
    ok = net::ReadFully(fd, &hello, sizeof hello, std::min(deadline, net::DeadlineAfterMs(kHandshakeMs)), interrupter);
  } catch (const CommError&) {
    ok = false;
  }
  if (!ok || hello.magic != wire::kHelloMagic || hello.version != wire::kProtocolVersion) {
    ::close(fd);
    return false;
  }
  wire::HelloAck ack{wire::kHelloMagic, wire::kHelloOk};
  if (hello.commTag != cfg.commTag || hello.worldSize != cfg.worldSize) {
    ack.status = wire::kHelloWrongCommunicator;
  } else if (hello.rank <= cfg.rank || hello.rank >= cfg.worldSize || conns[hello.rank].fd >= 0) {
    ack.status = wire::kHelloBadRank;
  }
  bool sent = false;
  try {
    sent = net::WriteFully(fd, &ack, sizeof ack, std::min(deadline, net::DeadlineAfterMs(kHandshakeMs)), interrupter);
  } catch (const CommError&) {
    sent = false;
  }
  if (!sent || ack.status != wire::kHelloOk) {
    ::close(fd);
    return false;
  }
  conns[hello.rank].fd = fd;
  return true;
}

}  // namespace

std::vector<Connection> ConnectMesh(int listenFd, const MeshConfig& cfg, const Interrupter& interrupter) {
  std::vector<Connection> conns(cfg.worldSize);
  for (int q = 0; q < cfg.worldSize; ++q) {
    conns[q].peer = q;
    conns[q].address = cfg.peers[q];
  }
  const net::Deadline deadline = net::DeadlineAfterMs(cfg.timeoutMs);
  try {
    for (int q = 0; q < cfg.rank; ++q) conns[q].fd = ConnectToLowerRank(cfg, conns[q], deadline, interrupter);
    int remaining = cfg.worldSize - 1 - cfg.rank;
    while (remaining > 0) {
      if (AcceptHigherRank(listenFd, cfg, conns, deadline, interrupter)) --remaining;
    }
  } catch (...) {
    CloseAll(conns);
    throw;
  }
  return conns;
}

}  // namespace mist::collectives
