#include "router/worker_registry.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "glog/logging.h"

namespace tandem {
namespace {

std::string KindName(v1::WorkerKind kind) {
  switch (kind) {
    case v1::WORKER_KIND_PREFILL:
      return "prefill";
    case v1::WORKER_KIND_DECODE:
      return "decode";
    case v1::WORKER_KIND_COLOCATED:
      return "colocated";
    default:
      return "unspecified";
  }
}

// "<fingerprint hex>/<block size>", for logs.
std::string KeyingName(const BlockKeying& keying) {
  return absl::StrFormat("%016x%016x/%d", keying.fingerprint.words[1],
                         keying.fingerprint.words[0], keying.block_size);
}

}  // namespace

BlockKeying KeyingOf(const v1::WorkerLoad& load) {
  BlockKeying keying;
  keying.fingerprint.words = {load.fingerprint().word0(),
                              load.fingerprint().word1()};
  keying.block_size = load.block_size();
  return keying;
}

WorkerRegistry::WorkerRegistry(absl::Duration expiry, Clock clock)
    : expiry_(expiry), clock_(std::move(clock)) {}

absl::Status WorkerRegistry::Report(const std::string& id,
                                    const std::string& address,
                                    const v1::WorkerLoad& load) {
  if (id.empty()) return absl::InvalidArgumentError("worker_id is empty");
  if (address.empty()) return absl::InvalidArgumentError("address is empty");
  if (load.kind() != v1::WORKER_KIND_PREFILL &&
      load.kind() != v1::WORKER_KIND_DECODE &&
      load.kind() != v1::WORKER_KIND_COLOCATED) {
    return absl::InvalidArgumentError(absl::StrCat(
        "load.kind=", load.kind(), " is not prefill, decode or colocated"));
  }
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_();
  auto [it, inserted] = workers_.try_emplace(id);
  Entry& entry = it->second;
  if (inserted) entry.joined = now;
  const bool moved = !inserted && (entry.state.address != address ||
                                   entry.state.load.kind() != load.kind());
  if (inserted || moved) {
    LOG(INFO) << "worker joined node=" << id << " address=" << address
              << " kind=" << KindName(load.kind())
              << " block_size=" << load.block_size()
              << " max_batch=" << load.max_batch()
              << " total_blocks=" << load.total_blocks();
  }
  entry.state = WorkerState{.id = id, .address = address, .load = load};
  entry.last_report = now;
  return absl::OkStatus();
}

void WorkerRegistry::Remove(const std::string& id, const absl::Status& reason) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(id);
  if (it == workers_.end()) return;
  LOG(WARNING) << "worker left node=" << id
               << " address=" << it->second.state.address
               << " reason=unreachable status=" << reason;
  workers_.erase(it);
}

void WorkerRegistry::RecordSent(const std::string& id, int64_t tokens,
                                int sequences, int64_t blocks) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(id);
  if (it == workers_.end()) return;
  WorkerState& state = it->second.state;
  state.sent_tokens += tokens;
  state.sent_sequences += sequences;
  state.sent_blocks += blocks;
}

void WorkerRegistry::ExpireLocked(std::vector<std::string>& departed) {
  const absl::Time now = clock_();
  for (auto it = workers_.begin(); it != workers_.end();) {
    const Entry& entry = it->second;
    if (now - entry.last_report < expiry_) {
      ++it;
      continue;
    }
    LOG(INFO) << "worker left node=" << it->first
              << " address=" << entry.state.address
              << " reason=expired silent_s="
              << absl::ToDoubleSeconds(now - entry.last_report);
    departed.push_back(it->first);
    it = workers_.erase(it);
  }
}

BlockKeying WorkerRegistry::MajorityKeyingLocked() const {
  struct Group {
    BlockKeying keying;
    int count = 0;
    absl::Time first_joined = absl::InfiniteFuture();
  };
  std::vector<Group> groups;
  for (const auto& [id, entry] : workers_) {
    const BlockKeying keying = KeyingOf(entry.state.load);
    Group* group = nullptr;
    for (Group& g : groups) {
      if (g.keying == keying) group = &g;
    }
    if (group == nullptr) group = &groups.emplace_back(Group{keying});
    ++group->count;
    group->first_joined = std::min(group->first_joined, entry.joined);
  }
  const Group* best = nullptr;
  for (const Group& g : groups) {
    if (best == nullptr || g.count > best->count ||
        (g.count == best->count && g.first_joined < best->first_joined)) {
      best = &g;
    }
  }
  return best == nullptr ? BlockKeying{} : best->keying;
}

ClusterView WorkerRegistry::View() {
  absl::MutexLock lock(&mu_);
  ClusterView view;
  ExpireLocked(view.departed);
  view.keying = MajorityKeyingLocked();
  for (auto& [id, entry] : workers_) {
    const BlockKeying keying = KeyingOf(entry.state.load);
    if (keying != view.keying || keying.block_size <= 0) {
      ++view.excluded;
      if (!entry.warned_excluded) {
        LOG(WARNING) << "worker excluded node=" << id
                     << " address=" << entry.state.address
                     << " keying=" << KeyingName(keying)
                     << " majority=" << KeyingName(view.keying)
                     << " reason=model fingerprint or block size differs "
                        "from most workers'";
        entry.warned_excluded = true;
      }
      continue;
    }
    entry.warned_excluded = false;
    switch (entry.state.load.kind()) {
      case v1::WORKER_KIND_PREFILL:
        view.prefill.push_back(entry.state);
        break;
      case v1::WORKER_KIND_COLOCATED:
        view.colocated.push_back(entry.state);
        break;
      default:
        view.decode.push_back(entry.state);
    }
  }
  return view;
}

}  // namespace tandem
