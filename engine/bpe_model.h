// The BPE model of a Hugging Face tokenizer.json: a vocabulary, ranked
// merges, and the rules for characters the vocabulary lacks.
//
// A word is encoded by splitting it into characters (each must be a token;
// otherwise, with byte_fallback, its UTF-8 bytes become "<0xNN>" tokens, or
// else it becomes unk_token, runs of them fused with fuse_unk, or, with no
// unk_token, it is dropped), then repeatedly merging the adjacent pair with
// the lowest merge rank, leftmost first. With ignore_merges a word that is
// itself a token is emitted whole. continuing_subword_prefix and
// end_of_word_suffix are honoured. Merges may be "a b" strings or [a, b]
// lists.
//
// Thread-safe: the model is immutable except for a bounded cache of
// encoded words, which is guarded by a mutex.
#ifndef TANDEM_ENGINE_BPE_MODEL_H_
#define TANDEM_ENGINE_BPE_MODEL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"

namespace tandem {

class BpeModel {
 public:
  // Parses the "model" object of tokenizer.json. InvalidArgument naming the
  // field for: a type other than BPE ("unsupported model type"), a missing
  // or mistyped vocab or merges, a negative or duplicate id, a merge that is
  // not two tokens or names a token (or a merged token) missing from the
  // vocabulary, an unk_token missing from the vocabulary, or dropout above
  // zero (random merges cannot give reproducible ids).
  static absl::StatusOr<std::unique_ptr<BpeModel>> FromJson(
      const nlohmann::json& model);

  BpeModel(const BpeModel&) = delete;
  BpeModel& operator=(const BpeModel&) = delete;

  // Appends the ids of `word` (one pre-tokenized word) to `ids`.
  void Tokenize(std::string_view word, std::vector<int32_t>* ids) const;

  // One past the largest token id.
  int32_t size() const { return static_cast<int32_t>(id_to_token_.size()); }

  // The token string of `id`, or nullptr if no token has that id.
  const std::string* IdToToken(int32_t id) const;

  // The id of token `token`, if it is in the vocabulary.
  std::optional<int32_t> TokenToId(std::string_view token) const;

  // Whether the vocabulary is exactly the 256 tokens "<0x00>".."<0xFF>" at
  // ids 0-255 with no merges and byte_fallback on: every byte then encodes
  // as its own value.
  bool is_pure_byte_model() const { return pure_bytes_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged_id;
  };

  BpeModel() = default;

  absl::Status ParseVocab(const nlohmann::json& vocab);
  absl::Status ParseMerges(const nlohmann::json& merges);
  absl::Status AddMerge(std::string_view left, std::string_view right,
                        int32_t rank, size_t index);
  // Initial symbols of `word` before any merge, as ids.
  void SplitIntoSymbols(std::string_view word, std::vector<int32_t>* ids) const;
  void MergeSymbols(std::vector<int32_t>* ids) const;
  void TokenizeUncached(std::string_view word, std::vector<int32_t>* ids) const;

  // Constant after FromJson.
  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> id_present_;
  absl::flat_hash_map<uint64_t, Merge> merges_;  // key: left << 32 | right
  std::optional<int32_t> unk_id_;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  bool pure_bytes_ = false;
  int32_t byte_ids_[256] = {};  // id of "<0xNN>", -1 if absent

  mutable absl::Mutex cache_mu_;
  mutable absl::flat_hash_map<std::string, std::vector<int32_t>> cache_
      ABSL_GUARDED_BY(cache_mu_);
};

}  // namespace tandem

#endif  // TANDEM_ENGINE_BPE_MODEL_H_
