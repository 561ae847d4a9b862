// The one exception type collectives throw. Its message is what the JavaScript promise rejects
// with, so it must say which operation failed and, where a peer is to blame, which peer rank.
#pragma once
#include <stdexcept>
#include <string>

namespace mist::collectives {

class CommError : public std::runtime_error {
 public:
  explicit CommError(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace mist::collectives
