#include "prefill_node/block_store_link.h"

#include <utility>

namespace tandem {
namespace {

class KvStoreClientLink final : public BlockStoreLink {
 public:
  explicit KvStoreClientLink(std::unique_ptr<KvStoreClient> client)
      : client_(std::move(client)) {}

  absl::StatusOr<size_t> LongestPrefix(
      absl::Span<const BlockKey> chain) override {
    return client_->LongestPrefix(chain);
  }
  std::vector<absl::StatusOr<std::string>> GetMany(
      absl::Span<const BlockKey> keys) override {
    return client_->GetMany(keys);
  }
  std::vector<absl::Status> PutMany(
      absl::Span<const absl::string_view> blocks) override {
    return client_->PutMany(blocks);
  }

 private:
  const std::unique_ptr<KvStoreClient> client_;
};

}  // namespace

std::unique_ptr<BlockStoreLink> LinkKvStoreClient(
    std::unique_ptr<KvStoreClient> client) {
  return std::make_unique<KvStoreClientLink>(std::move(client));
}

}  // namespace tandem
