#include "engine/streaming_detokenizer.h"

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"
#include "engine/utf8.h"

namespace tandem {

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer* tokenizer,
                                           bool skip_special_tokens)
    : tokenizer_(tokenizer),
      skip_special_tokens_(skip_special_tokens),
      strip_content_(tokenizer->leading_strip_content()),
      strip_count_(strip_content_.empty() ? 0
                                          : tokenizer->leading_strip_count()),
      strip_left_(strip_count_) {}

absl::StatusOr<std::string> StreamingDetokenizer::Add(int32_t id) {
  if (id < 0 || id >= tokenizer_->vocab_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("token id ", id, " is outside the vocabulary [0, ",
                     tokenizer_->vocab_size(), ")"));
  }
  if (skip_special_tokens_ && tokenizer_->IsSpecialToken(id)) return "";
  TANDEM_ASSIGN_OR_RETURN(std::string bytes,
                          tokenizer_->TokenBytes(id, first_token_));
  first_token_ = false;
  pending_.append(bytes);
  std::string text;
  const size_t used = AppendCompleteUtf8Lossy(pending_, &text);
  pending_.erase(0, used);
  StripLeading(&text);
  return text;
}

std::string StreamingDetokenizer::Flush() {
  std::string text;
  AppendUtf8Lossy(pending_, &text);
  StripLeading(&text);
  pending_.clear();
  first_token_ = true;
  strip_left_ = strip_count_;
  return text;
}

void StreamingDetokenizer::StripLeading(std::string* text) {
  size_t cut = 0;
  while (strip_left_ > 0 && cut < text->size()) {
    if (text->compare(cut, strip_content_.size(), strip_content_) != 0) {
      strip_left_ = 0;  // the text starts with something else
      break;
    }
    cut += strip_content_.size();
    --strip_left_;
  }
  text->erase(0, cut);
}

}  // namespace tandem
