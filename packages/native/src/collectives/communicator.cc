#include "collectives/communicator.h"

namespace mist::collectives {

const char* ReduceOpName(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "sum";
    case ReduceOp::kAvg: return "avg";
    case ReduceOp::kMax: return "max";
  }
  return "?";
}

const char* GroupOpName(GroupOpKind kind) {
  switch (kind) {
    case GroupOpKind::kSend: return "send";
    case GroupOpKind::kRecv: return "recv";
    case GroupOpKind::kAllReduce: return "allReduce";
    case GroupOpKind::kAllGather: return "allGather";
    case GroupOpKind::kReduceScatter: return "reduceScatter";
    case GroupOpKind::kBroadcast: return "broadcast";
  }
  return "?";
}

namespace {

void CheckRank(const Communicator& comm, const char* op, const char* what, int peer, bool allowSelf) {
  if (peer < 0 || peer >= comm.size()) {
    throw CommError(std::string(op) + ": " + what + " " + std::to_string(peer) + " is not a rank of this communicator (worldSize " +
                    std::to_string(comm.size()) + ")");
  }
  if (!allowSelf && peer == comm.rank()) {
    throw CommError(std::string(op) + ": " + what + " " + std::to_string(peer) + " is this rank itself");
  }
}

}  // namespace

void ValidateOp(const Communicator& comm, const GroupOp& op) {
  const char* name = GroupOpName(op.kind);
  const size_t n = static_cast<size_t>(comm.size());
  switch (op.kind) {
    case GroupOpKind::kSend:
    case GroupOpKind::kRecv:
      CheckRank(comm, name, "peer", op.peer, false);
      break;
    case GroupOpKind::kBroadcast:
      CheckRank(comm, name, "root", op.peer, true);
      break;
    case GroupOpKind::kAllReduce:
      break;
    case GroupOpKind::kAllGather:
      if (op.output.count != op.input.count * n) {
        throw CommError("allGather: output has " + std::to_string(op.output.count) + " elements but worldSize " +
                        std::to_string(n) + " x input " + std::to_string(op.input.count) + " = " +
                        std::to_string(op.input.count * n) + " are needed");
      }
      break;
    case GroupOpKind::kReduceScatter:
      if (op.input.count != op.output.count * n) {
        throw CommError("reduceScatter: input has " + std::to_string(op.input.count) + " elements but worldSize " +
                        std::to_string(n) + " x output " + std::to_string(op.output.count) + " = " +
                        std::to_string(op.output.count * n) + " are needed");
      }
      break;
  }
}

}  // namespace mist::collectives
