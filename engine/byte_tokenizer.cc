#include "engine/byte_tokenizer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"
#include "engine/utf8.h"

namespace tandem {
namespace {

// Appends a run of byte ids the way a ByteFallback decoder does.
void AppendByteRun(std::string_view run, std::string* out) {
  if (IsValidUtf8(run)) {
    out->append(run);
    return;
  }
  for (size_t i = 0; i < run.size(); ++i) out->append(kReplacementChar);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ByteTokenizer>> ByteTokenizer::Create(
    int32_t bos_id, int32_t eos_id) {
  if (bos_id < 256 || eos_id < 256 || bos_id == eos_id) {
    return absl::InvalidArgumentError(
        absl::StrCat("byte tokenizer: BOS ", bos_id, " and EOS ", eos_id,
                     " must be distinct ids of at least 256"));
  }
  std::vector<AddedToken> specials = {
      {.id = bos_id, .content = "<s>", .special = true},
      {.id = eos_id, .content = "</s>", .special = true}};
  TANDEM_ASSIGN_OR_RETURN(
      AddedVocabulary added,
      AddedVocabulary::Create(std::move(specials), nullptr));
  return std::make_unique<ByteTokenizer>(std::move(added),
                                         PostProcessor({bos_id}, {}),
                                         SpecialTokenIds{bos_id, {eos_id}});
}

ByteTokenizer::ByteTokenizer(AddedVocabulary added,
                             PostProcessor post_processor, SpecialTokenIds ids)
    : Tokenizer(std::move(ids)),
      added_(std::move(added)),
      post_processor_(std::move(post_processor)),
      vocab_size_(256) {
  for (const AddedToken& token : added_.tokens()) {
    vocab_size_ = std::max(vocab_size_, token.id + 1);
  }
}

bool ByteTokenizer::IsSpecialToken(int32_t id) const {
  const AddedToken* token = added_.FindById(id);
  return token != nullptr && token->special;
}

std::optional<int32_t> ByteTokenizer::TokenToId(std::string_view token) const {
  if (auto id = added_.IdOf(token)) return id;
  // "<0xNN>", upper-case hex, as in the vocabulary.
  if (token.size() != 6 || token.substr(0, 3) != "<0x" || token[5] != '>') {
    return std::nullopt;
  }
  int value = 0;
  for (char c : token.substr(3, 2)) {
    const bool digit = c >= '0' && c <= '9';
    if (!digit && !(c >= 'A' && c <= 'F')) return std::nullopt;
    value = value * 16 + (digit ? c - '0' : c - 'A' + 10);
  }
  return value;
}

absl::StatusOr<std::vector<int32_t>> ByteTokenizer::EncodeValid(
    std::string_view text, bool add_special_tokens) const {
  std::vector<Segment> segments;
  TANDEM_RETURN_IF_ERROR(added_.Split(text, nullptr, &segments));
  std::vector<int32_t> ids;
  ids.reserve(text.size() + 2);
  for (const Segment& segment : segments) {
    if (segment.token.has_value()) {
      ids.push_back(*segment.token);
    } else {
      for (unsigned char b : segment.text.text) ids.push_back(b);
    }
  }
  if (!add_special_tokens) return ids;
  return post_processor_.Apply(std::move(ids));
}

absl::StatusOr<std::string> ByteTokenizer::DecodeValid(
    absl::Span<const int32_t> ids, bool skip_special_tokens) const {
  std::string text;
  std::string run;
  for (int32_t id : ids) {
    if (id < 256) {
      run.push_back(static_cast<char>(id));
      continue;
    }
    const AddedToken* token = added_.FindById(id);
    if (token == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", id, " names no token"));
    }
    if (skip_special_tokens && token->special) continue;
    AppendByteRun(run, &text);
    run.clear();
    text.append(token->content);
  }
  AppendByteRun(run, &text);
  return text;
}

absl::StatusOr<std::string> ByteTokenizer::TokenBytes(int32_t id,
                                                      bool first) const {
  if (id >= 0 && id < 256) return std::string(1, static_cast<char>(id));
  const AddedToken* token = added_.FindById(id);
  if (token == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("token id ", id, " names no token"));
  }
  return token->content;
}

}  // namespace tandem
