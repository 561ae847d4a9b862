// Lifecycle, failure handling, send/recv, groups and split of the CPU backend. The ring
// algorithms are in cpu_ring.cc.
#include "collectives/cpu_communicator.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <utility>

#include "collectives/cpu_mesh.h"
#include "collectives/tcp_socket.h"
#include "collectives/wire_format.h"

namespace mist::collectives {
namespace {

// Closes a descriptor unless ownership was handed on.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

bool IsPointToPoint(GroupOpKind kind) { return kind == GroupOpKind::kSend || kind == GroupOpKind::kRecv; }

}  // namespace

CpuCommunicator::CpuCommunicator(CpuCommConfig config) : cfg_(std::move(config)) {
  advertiseHost_ = net::ParseHostPort(cfg_.peers.at(cfg_.rank)).host;
}

CpuCommunicator::~CpuCommunicator() { Close(); }

template <typename Body>
void CpuCommunicator::Guarded(const char* op, Body&& body) {
  const std::string prefix =
      std::string(op) + " failed on rank " + std::to_string(cfg_.rank) + " of " + std::to_string(cfg_.worldSize) + ": ";
  if (!failure_.empty()) throw CommError(prefix + "the communicator is unusable after an earlier failure: " + failure_);
  std::string error;
  try {
    body();
    return;
  } catch (const CommError& e) {
    error = e.what();
  } catch (const std::bad_alloc&) {
    error = "out of host memory";
  } catch (const std::exception& e) {
    error = e.what();
  }
  failure_ = prefix + error;
  if (!interrupter_.triggered()) SendAbortNotices(conns_, failure_, cfg_.timeoutMs);
  throw CommError(failure_);
}

void CpuCommunicator::Connect() {
  Guarded("connect", [&] {
    FdGuard listener(std::exchange(cfg_.listenFd, -1));
    MeshConfig mesh{cfg_.rank, cfg_.worldSize, cfg_.peers, cfg_.commTag, cfg_.timeoutMs};
    conns_ = ConnectMesh(listener.get(), mesh, interrupter_);
  });
}

void CpuCommunicator::Exchange(std::vector<PeerTraffic>& traffic) {
  ExchangeContext ctx;
  ctx.timeoutMs = cfg_.timeoutMs;
  ctx.interrupter = &interrupter_;
  ctx.bytesSent = &bytesSent_;
  ctx.bytesReceived = &bytesReceived_;
  ExchangeFrames(traffic, ctx);
}

void CpuCommunicator::AllReduce(Buffer buf, ReduceOp op) {
  Guarded("allReduce", [&] { AllReduceImpl(wire::kAllReduce, static_cast<float*>(buf.data), buf.count, op); });
}

void CpuCommunicator::AllGather(Buffer input, Buffer output) {
  Guarded("allGather", [&] {
    AllGatherImpl(wire::kAllGather, static_cast<const float*>(input.data), static_cast<float*>(output.data), input.count);
  });
}

void CpuCommunicator::ReduceScatter(Buffer input, Buffer output, ReduceOp op) {
  Guarded("reduceScatter", [&] {
    ReduceScatterImpl(static_cast<const float*>(input.data), static_cast<float*>(output.data), output.count, op);
  });
}

void CpuCommunicator::Broadcast(Buffer buf, int root) {
  Guarded("broadcast", [&] { BroadcastImpl(static_cast<float*>(buf.data), buf.count, root); });
}

void CpuCommunicator::Barrier() {
  Guarded("barrier", [&] {
    float token = 0.0f;
    AllReduceImpl(wire::kBarrier, &token, 1, ReduceOp::kSum);
  });
}

void CpuCommunicator::PointToPoint(const std::vector<GroupOp>& ops) {
  std::vector<PeerTraffic> traffic;
  std::vector<int> slot(cfg_.worldSize, -1);
  for (const GroupOp& op : ops) {
    if (!IsPointToPoint(op.kind)) continue;
    if (slot[op.peer] < 0) {
      slot[op.peer] = static_cast<int>(traffic.size());
      traffic.push_back(PeerTraffic{&conns_[op.peer], {}, {}});
    }
    PeerTraffic& t = traffic[slot[op.peer]];
    if (op.kind == GroupOpKind::kSend) {
      t.sends.push_back(SendFrame{wire::kSendRecv, op.input.data, op.input.count * sizeof(float), 0});
    } else {
      t.recvs.push_back(RecvFrame{wire::kSendRecv, op.output.data, op.output.count * sizeof(float), nullptr});
    }
  }
  if (!traffic.empty()) Exchange(traffic);
}

// Point-to-point operations of a group all progress together; its collectives then run in the
// order given (every rank runs the same collectives in the same order, so this cannot deadlock).
void CpuCommunicator::Group(const std::vector<GroupOp>& ops) {
  const char* name = ops.size() == 1 ? GroupOpName(ops[0].kind) : "group";
  Guarded(name, [&] {
    PointToPoint(ops);
    for (const GroupOp& op : ops) {
      switch (op.kind) {
        case GroupOpKind::kSend:
        case GroupOpKind::kRecv:
          break;
        case GroupOpKind::kAllReduce:
          AllReduceImpl(wire::kAllReduce, static_cast<float*>(op.input.data), op.input.count, op.op);
          break;
        case GroupOpKind::kAllGather:
          AllGatherImpl(wire::kAllGather, static_cast<const float*>(op.input.data), static_cast<float*>(op.output.data),
                        op.input.count);
          break;
        case GroupOpKind::kReduceScatter:
          ReduceScatterImpl(static_cast<const float*>(op.input.data), static_cast<float*>(op.output.data), op.output.count,
                            op.op);
          break;
        case GroupOpKind::kBroadcast:
          BroadcastImpl(static_cast<float*>(op.input.data), op.input.count, op.peer);
          break;
      }
    }
  });
}

// Every rank all-gathers (color, key, address of a fresh listener); the ranks sharing a color
// then build their own mesh, ordered by (key, parent rank).
std::unique_ptr<Communicator> CpuCommunicator::Split(int color, int key) {
  std::unique_ptr<Communicator> child;
  Guarded("split", [&] {
    struct Record {
      int32_t color;
      int32_t key;
      uint32_t port;
      char host[260];
    };
    static_assert(sizeof(Record) % sizeof(float) == 0, "records travel as float32 elements");
    if (advertiseHost_.size() >= sizeof(Record::host)) throw CommError("host name too long: " + advertiseHost_);

    uint16_t port = 0;
    FdGuard listener(net::Listen(cfg_.bindHost, 0, port));
    std::vector<Record> records(cfg_.worldSize);
    Record& mine = records[cfg_.rank];
    std::memset(&mine, 0, sizeof mine);
    mine.color = color;
    mine.key = key;
    mine.port = port;
    std::memcpy(mine.host, advertiseHost_.data(), advertiseHost_.size());
    AllGatherImpl(wire::kSplit, reinterpret_cast<const float*>(&mine), reinterpret_cast<float*>(records.data()),
                  sizeof(Record) / sizeof(float));
    const int splitIndex = splitCount_++;
    if (color < 0) return;

    std::vector<int> members;
    for (int i = 0; i < cfg_.worldSize; ++i) {
      if (records[i].color == color) members.push_back(i);
    }
    std::stable_sort(members.begin(), members.end(), [&](int a, int b) { return records[a].key < records[b].key; });

    CpuCommConfig config;
    config.worldSize = static_cast<int>(members.size());
    for (size_t i = 0; i < members.size(); ++i) {
      const Record& rec = records[members[i]];
      if (rec.host[sizeof rec.host - 1] != '\0') throw CommError("received a corrupt split record");
      config.peers.push_back(net::FormatHostPort(rec.host, static_cast<uint16_t>(rec.port)));
      if (members[i] == cfg_.rank) config.rank = static_cast<int>(i);
    }
    const int64_t tagInput[2] = {splitIndex, color};
    config.commTag = HashBytes(tagInput, sizeof tagInput, cfg_.commTag);
    config.listenFd = listener.release();
    config.bindHost = cfg_.bindHost;
    config.timeoutMs = cfg_.timeoutMs;
    auto comm = std::make_unique<CpuCommunicator>(std::move(config));
    comm->Connect();
    child = std::move(comm);
  });
  return child;
}

void CpuCommunicator::Close() {
  for (Connection& c : conns_) {
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
  }
  if (cfg_.listenFd >= 0) ::close(cfg_.listenFd);
  cfg_.listenFd = -1;
}

bool CpuCommunicator::Traffic(TrafficStats& out) const {
  out.bytesSent = bytesSent_.load();
  out.bytesReceived = bytesReceived_.load();
  return true;
}

}  // namespace mist::collectives
