// Connection setup of a CPU communicator: one TCP connection per pair of ranks. Rank r connects
// to every lower rank's listening address and accepts one connection from every higher rank; a
// short hello/ack handshake checks that both ends belong to the same communicator. Connecting
// never waits on the peer's application (the kernel completes the TCP handshake), so the setup
// cannot deadlock in any order of arrival.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "collectives/connection.h"
#include "collectives/interrupter.h"

namespace mist::collectives {

struct MeshConfig {
  int rank = 0;
  int worldSize = 1;
  std::vector<std::string> peers;  // host:port of every rank
  uint64_t commTag = 0;            // equal on all ranks of one communicator
  int64_t timeoutMs = 30000;
};

// Returns one Connection per rank (the entry of this rank has fd -1). Throws CommError naming the
// peer rank that could not be reached or did not show up before the timeout.
std::vector<Connection> ConnectMesh(int listenFd, const MeshConfig& config, const Interrupter& interrupter);

// FNV-1a, used to derive communicator tags.
uint64_t HashBytes(const void* data, size_t bytes, uint64_t seed = 1469598103934665603ull);

}  // namespace mist::collectives
