#include "engine/bpe_model.h"

#include <queue>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/status_macros.h"
#include "engine/tokenizer_json.h"

namespace tandem {
namespace {

// Words up to this many bytes are cached, up to this many words (then the
// cache starts over).
constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kMaxCachedWords = 16384;

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
         static_cast<uint32_t>(right);
}

std::string ByteToken(int b) { return absl::StrFormat("<0x%02X>", b); }

// Length of the valid UTF-8 character that starts with byte `b`.
size_t CharLength(unsigned char b) {
  if (b >= 0xF0) return 4;
  if (b >= 0xE0) return 3;
  if (b >= 0xC0) return 2;
  return 1;
}

// A merge candidate: symbols at `pos` and its successor, when they still
// hold `left` and `right`, merge into `merged`.
struct Candidate {
  int32_t rank;
  int32_t pos;
  int32_t left;
  int32_t right;
  int32_t merged;
  // Lowest rank first, then leftmost.
  bool operator>(const Candidate& other) const {
    return rank != other.rank ? rank > other.rank : pos > other.pos;
  }
};

absl::StatusOr<std::string> OptionalString(const nlohmann::json& model,
                                           std::string_view key) {
  auto it = model.find(key);
  if (it == model.end() || it->is_null()) return std::string();
  if (!it->is_string()) {
    return JsonError(JsonPath("model", key), "expected a string or null");
  }
  return it->get<std::string>();
}

}  // namespace

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(
    const nlohmann::json& model) {
  TANDEM_ASSIGN_OR_RETURN(std::string type, ComponentType(model, "model"));
  if (type != "BPE") return UnsupportedType("model", type);
  auto dropout = model.find("dropout");
  if (dropout != model.end() && !dropout->is_null() &&
      !(dropout->is_number() && dropout->get<double>() == 0.0)) {
    return JsonError("model.dropout", "BPE dropout is not supported");
  }
  std::unique_ptr<BpeModel> bpe(new BpeModel());
  TANDEM_ASSIGN_OR_RETURN(const nlohmann::json* vocab,
                          RequireField(model, "vocab", "model"));
  TANDEM_RETURN_IF_ERROR(bpe->ParseVocab(*vocab));
  TANDEM_ASSIGN_OR_RETURN(bpe->continuing_subword_prefix_,
                          OptionalString(model, "continuing_subword_prefix"));
  TANDEM_ASSIGN_OR_RETURN(bpe->end_of_word_suffix_,
                          OptionalString(model, "end_of_word_suffix"));
  TANDEM_ASSIGN_OR_RETURN(bpe->fuse_unk_,
                          OptionalBool(model, "fuse_unk", "model", false));
  TANDEM_ASSIGN_OR_RETURN(bpe->byte_fallback_,
                          OptionalBool(model, "byte_fallback", "model", false));
  TANDEM_ASSIGN_OR_RETURN(bpe->ignore_merges_,
                          OptionalBool(model, "ignore_merges", "model", false));
  TANDEM_ASSIGN_OR_RETURN(std::string unk, OptionalString(model, "unk_token"));
  if (!unk.empty()) {
    bpe->unk_id_ = bpe->TokenToId(unk);
    if (!bpe->unk_id_.has_value()) {
      return JsonError("model.unk_token",
                       absl::StrCat("'", unk, "' is not in model.vocab"));
    }
  }
  TANDEM_ASSIGN_OR_RETURN(const nlohmann::json* merges,
                          RequireField(model, "merges", "model"));
  TANDEM_RETURN_IF_ERROR(bpe->ParseMerges(*merges));
  bool pure =
      bpe->byte_fallback_ && bpe->merges_.empty() && bpe->vocab_.size() == 256;
  for (int b = 0; b < 256; ++b) {
    bpe->byte_ids_[b] = bpe->TokenToId(ByteToken(b)).value_or(-1);
    pure = pure && bpe->byte_ids_[b] == b;
  }
  bpe->pure_bytes_ = pure;
  return bpe;
}

absl::Status BpeModel::ParseVocab(const nlohmann::json& vocab) {
  if (!vocab.is_object()) {
    return JsonError("model.vocab", "expected an object of token: id");
  }
  vocab_.reserve(vocab.size());
  for (const auto& [token, id_json] : vocab.items()) {
    if (!id_json.is_number_integer() || id_json.get<int64_t>() < 0 ||
        id_json.get<int64_t>() > INT32_MAX - 1) {
      return JsonError(JsonPath("model.vocab", token),
                       "expected a non-negative integer id");
    }
    const auto id = static_cast<int32_t>(id_json.get<int64_t>());
    if (static_cast<size_t>(id) >= id_to_token_.size()) {
      id_to_token_.resize(id + 1);
      id_present_.resize(id + 1, false);
    }
    if (id_present_[id]) {
      return JsonError(JsonPath("model.vocab", token),
                       absl::StrCat("id ", id, " is used twice"));
    }
    id_present_[id] = true;
    id_to_token_[id] = token;
    vocab_.emplace(token, id);
  }
  return absl::OkStatus();
}

absl::Status BpeModel::ParseMerges(const nlohmann::json& merges) {
  if (!merges.is_array()) return JsonError("model.merges", "expected a list");
  merges_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const nlohmann::json& merge = merges[i];
    const auto rank = static_cast<int32_t>(i);
    if (merge.is_string()) {
      const std::string& text = merge.get_ref<const std::string&>();
      const size_t space = text.find(' ');
      if (space == std::string::npos ||
          text.find(' ', space + 1) != std::string::npos) {
        return JsonError(JsonPath("model.merges", i),
                         "expected two tokens separated by one space");
      }
      TANDEM_RETURN_IF_ERROR(AddMerge(std::string_view(text).substr(0, space),
                                      std::string_view(text).substr(space + 1),
                                      rank, i));
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      TANDEM_RETURN_IF_ERROR(AddMerge(merge[0].get_ref<const std::string&>(),
                                      merge[1].get_ref<const std::string&>(),
                                      rank, i));
    } else {
      return JsonError(JsonPath("model.merges", i),
                       "expected \"a b\" or [\"a\", \"b\"]");
    }
  }
  return absl::OkStatus();
}

absl::Status BpeModel::AddMerge(std::string_view left, std::string_view right,
                                int32_t rank, size_t index) {
  const std::optional<int32_t> left_id = TokenToId(left);
  const std::optional<int32_t> right_id = TokenToId(right);
  std::string merged(left);
  const size_t skip = std::min(continuing_subword_prefix_.size(), right.size());
  merged.append(right.substr(skip));
  const std::optional<int32_t> merged_id = TokenToId(merged);
  const std::string_view missing = !left_id     ? left
                                   : !right_id  ? right
                                   : !merged_id ? std::string_view(merged)
                                                : std::string_view();
  if (!left_id || !right_id || !merged_id) {
    return JsonError(
        JsonPath("model.merges", index),
        absl::StrCat("token '", AbslView(missing), "' is not in model.vocab"));
  }
  merges_.insert_or_assign(PairKey(*left_id, *right_id),
                           Merge{rank, *merged_id});
  return absl::OkStatus();
}

const std::string* BpeModel::IdToToken(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() ||
      !id_present_[id]) {
    return nullptr;
  }
  return &id_to_token_[id];
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(absl::string_view(token.data(), token.size()));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

void BpeModel::SplitIntoSymbols(std::string_view word,
                                std::vector<int32_t>* ids) const {
  std::optional<int32_t> pending_unk;
  std::string symbol;
  for (size_t pos = 0; pos < word.size();) {
    const size_t len = std::min(
        CharLength(static_cast<unsigned char>(word[pos])), word.size() - pos);
    symbol.clear();
    if (pos > 0) symbol.append(continuing_subword_prefix_);
    symbol.append(word.substr(pos, len));
    pos += len;
    if (pos == word.size()) symbol.append(end_of_word_suffix_);
    if (auto id = TokenToId(symbol)) {
      if (pending_unk) ids->push_back(*std::exchange(pending_unk, {}));
      ids->push_back(*id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char b : symbol) all = all && byte_ids_[b] >= 0;
      if (all) {
        for (unsigned char b : symbol) ids->push_back(byte_ids_[b]);
        continue;
      }
    }
    if (!unk_id_) continue;
    if (pending_unk && !fuse_unk_) ids->push_back(*pending_unk);
    pending_unk = unk_id_;
  }
  if (pending_unk) ids->push_back(*pending_unk);
}

void BpeModel::MergeSymbols(std::vector<int32_t>* ids) const {
  const int32_t n = static_cast<int32_t>(ids->size());
  if (n < 2) return;
  std::vector<int32_t>& id = *ids;
  std::vector<int32_t> prev(n), next(n);
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto consider = [&](int32_t pos) {
    if (pos < 0 || next[pos] < 0) return;
    auto it = merges_.find(PairKey(id[pos], id[next[pos]]));
    if (it == merges_.end()) return;
    queue.push(
        {it->second.rank, pos, id[pos], id[next[pos]], it->second.merged_id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);
  std::vector<bool> alive(n, true);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    const int32_t right = next[c.pos];
    if (!alive[c.pos] || right < 0 || id[c.pos] != c.left ||
        id[right] != c.right) {
      continue;  // stale: a neighbour merged since this was queued
    }
    id[c.pos] = c.merged;
    alive[right] = false;
    next[c.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.pos;
    consider(prev[c.pos]);
    consider(c.pos);
  }
  int32_t out = 0;
  for (int32_t i = 0; i < n; ++i) {
    if (alive[i]) id[out++] = id[i];
  }
  ids->resize(out);
}

void BpeModel::TokenizeUncached(std::string_view word,
                                std::vector<int32_t>* ids) const {
  std::vector<int32_t> symbols;
  SplitIntoSymbols(word, &symbols);
  MergeSymbols(&symbols);
  ids->insert(ids->end(), symbols.begin(), symbols.end());
}

void BpeModel::Tokenize(std::string_view word,
                        std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  if (pure_bytes_) {
    for (unsigned char b : word) ids->push_back(b);
    return;
  }
  if (ignore_merges_) {
    if (auto id = TokenToId(word)) {
      ids->push_back(*id);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    absl::ReaderMutexLock lock(&cache_mu_);
    auto it = cache_.find(absl::string_view(word.data(), word.size()));
    if (it != cache_.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t start = ids->size();
  TokenizeUncached(word, ids);
  if (!cacheable) return;
  absl::MutexLock lock(&cache_mu_);
  if (cache_.size() >= kMaxCachedWords) cache_.clear();
  cache_.try_emplace(std::string(word), ids->begin() + start, ids->end());
}

}  // namespace tandem
