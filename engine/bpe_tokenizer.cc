#include "engine/bpe_tokenizer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"

namespace tandem {

BpeTokenizer::BpeTokenizer(TokenizerParts parts, SpecialTokenIds ids)
    : Tokenizer(std::move(ids)), parts_(std::move(parts)) {
  vocab_size_ = parts_.model->size();
  for (const AddedToken& token : parts_.added.tokens()) {
    vocab_size_ = std::max(vocab_size_, token.id + 1);
  }
}

bool BpeTokenizer::IsSpecialToken(int32_t id) const {
  const AddedToken* token = parts_.added.FindById(id);
  return token != nullptr && token->special;
}

std::optional<int32_t> BpeTokenizer::TokenToId(std::string_view token) const {
  if (auto id = parts_.added.IdOf(token)) return id;
  return parts_.model->TokenToId(token);
}

absl::StatusOr<std::string_view> BpeTokenizer::TokenString(int32_t id) const {
  if (parts_.added.FindById(id) != nullptr) {
    return std::string_view(parts_.added.DecodeString(id));
  }
  if (const std::string* token = parts_.model->IdToToken(id)) {
    return std::string_view(*token);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("token id ", id, " names no token"));
}

absl::StatusOr<std::vector<int32_t>> BpeTokenizer::EncodeValid(
    std::string_view text, bool add_special_tokens) const {
  std::vector<Segment> segments;
  TANDEM_RETURN_IF_ERROR(
      parts_.added.Split(text, parts_.normalizer.get(), &segments));
  std::vector<int32_t> ids;
  std::vector<PreToken> words;
  for (Segment& segment : segments) {
    if (segment.token.has_value()) {
      ids.push_back(*segment.token);
      continue;
    }
    words.clear();
    words.push_back(std::move(segment.text));
    if (parts_.pre_tokenizer != nullptr) {
      TANDEM_RETURN_IF_ERROR(parts_.pre_tokenizer->PreTokenize(&words));
    }
    for (const PreToken& word : words) parts_.model->Tokenize(word.text, &ids);
  }
  if (!add_special_tokens) return ids;
  return parts_.post_processor.Apply(std::move(ids));
}

absl::StatusOr<std::string> BpeTokenizer::DecodeValid(
    absl::Span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (skip_special_tokens && IsSpecialToken(id)) continue;
    TANDEM_ASSIGN_OR_RETURN(std::string_view token, TokenString(id));
    tokens.emplace_back(token);
  }
  return parts_.decoder.Decode(std::move(tokens));
}

absl::StatusOr<std::string> BpeTokenizer::TokenBytes(int32_t id,
                                                     bool first) const {
  if (id < 0 || id >= vocab_size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("token id ", id, " is outside [0, ", vocab_size_, ")"));
  }
  TANDEM_ASSIGN_OR_RETURN(std::string_view token, TokenString(id));
  return parts_.decoder.DecodePiece(token, first);
}

}  // namespace tandem
