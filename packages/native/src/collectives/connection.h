// One TCP connection of a CPU communicator to one peer rank.
#pragma once
#include <cstdint>
#include <string>

namespace mist::collectives {

struct Connection {
  int fd = -1;
  int peer = -1;        // the peer's rank in the communicator
  std::string address;  // the peer's host:port, for error messages
  // Bytes of a partly written frame. An abort notice is only understood at a frame boundary, so
  // the aborting side first pads the unfinished frame with this many zero bytes.
  uint64_t outFrameRemaining = 0;

  // "peer rank 2 (10.0.0.3:4100)"
  std::string Describe() const { return "peer rank " + std::to_string(peer) + " (" + address + ")"; }
};

}  // namespace mist::collectives
