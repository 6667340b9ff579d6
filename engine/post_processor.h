// The post-processor of a Hugging Face tokenizer.json, reduced to what it
// does to a single sequence's ids: special tokens added before and after
// them when encoding with special tokens.
//
// Supported types: TemplateProcessing (its "single" template, which must
// hold the sequence exactly once, with each SpecialToken looked up in
// "special_tokens"), BertProcessing and RobertaProcessing (cls before, sep
// after), ByteLevel (changes only offsets, so nothing here) and Sequence
// (each in turn, later ones wrapping earlier ones). Immutable; thread-safe.
#ifndef TANDEM_ENGINE_POST_PROCESSOR_H_
#define TANDEM_ENGINE_POST_PROCESSOR_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace tandem {

class PostProcessor {
 public:
  // Adds nothing.
  PostProcessor() = default;

  // Adds `prefix` before and `suffix` after the ids.
  PostProcessor(std::vector<int32_t> prefix, std::vector<int32_t> suffix)
      : prefix_(std::move(prefix)), suffix_(std::move(suffix)) {}

  // Parses the "post_processor" at `path`; null adds nothing.
  // InvalidArgument naming the field for a malformed one or a template that
  // does not hold the sequence exactly once or names an unknown special
  // token; "tokenizer.json: unsupported post_processor type 'T'" for others.
  static absl::StatusOr<PostProcessor> FromJson(const nlohmann::json& json,
                                                std::string_view path);

  // Wraps `ids` (the encoded text) in the special tokens.
  std::vector<int32_t> Apply(std::vector<int32_t> ids) const;

  const std::vector<int32_t>& prefix() const { return prefix_; }
  const std::vector<int32_t>& suffix() const { return suffix_; }
  bool adds_nothing() const { return prefix_.empty() && suffix_.empty(); }

 private:
  std::vector<int32_t> prefix_;
  std::vector<int32_t> suffix_;
};

}  // namespace tandem

#endif  // TANDEM_ENGINE_POST_PROCESSOR_H_
