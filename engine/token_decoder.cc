#include "engine/token_decoder.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "engine/byte_level.h"
#include "engine/replace_rule.h"
#include "engine/status_macros.h"
#include "engine/tokenizer_json.h"
#include "engine/tokenizer_regex.h"
#include "engine/utf8.h"

namespace tandem {

class DecoderStep {
 public:
  virtual ~DecoderStep() = default;
  // Hugging Face's decode_chain: rewrites the list of token strings.
  virtual void DecodeChain(std::vector<std::string>* tokens) const = 0;
  // One token's contribution, raw (see TokenDecoder::DecodePiece).
  virtual void DecodePiece(std::string* token, bool first) const = 0;
  // Whether the step leaves a single token (Fuse, ByteLevel).
  virtual bool joins() const { return false; }
};

namespace {

// The byte a "<0xNN>" token stands for.
std::optional<unsigned char> ByteFallbackValue(std::string_view token) {
  if (token.size() != 6 || token.substr(0, 3) != "<0x" || token[5] != '>') {
    return std::nullopt;
  }
  int value = 0;
  for (char c : token.substr(3, 2)) {
    int digit = -1;
    if (c >= '0' && c <= '9') digit = c - '0';
    if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
    if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    if (digit < 0) return std::nullopt;
    value = value * 16 + digit;
  }
  return static_cast<unsigned char>(value);
}

std::string JoinAll(const std::vector<std::string>& tokens) {
  return absl::StrJoin(tokens, "");
}

class ByteLevelStep : public DecoderStep {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& token : *tokens) DecodePiece(&token, false);
    std::string text;
    AppendUtf8Lossy(JoinAll(*tokens), &text);
    *tokens = {std::move(text)};
  }
  void DecodePiece(std::string* token, bool) const override {
    if (!IsValidUtf8(*token)) return;
    std::string bytes;
    if (AppendByteLevelBytes(*token, &bytes)) *token = std::move(bytes);
  }
  bool joins() const override { return true; }
};

class ByteFallbackStep : public DecoderStep {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    std::string run;
    auto flush = [&] {
      if (run.empty()) return;
      if (IsValidUtf8(run)) {
        out.push_back(run);
      } else {
        for (size_t i = 0; i < run.size(); ++i) {
          out.emplace_back(kReplacementChar);
        }
      }
      run.clear();
    };
    for (std::string& token : *tokens) {
      if (auto byte = ByteFallbackValue(token)) {
        run.push_back(static_cast<char>(*byte));
        continue;
      }
      flush();
      out.push_back(std::move(token));
    }
    flush();
    *tokens = std::move(out);
  }
  void DecodePiece(std::string* token, bool) const override {
    if (auto byte = ByteFallbackValue(*token)) {
      *token = std::string(1, static_cast<char>(*byte));
    }
  }
};

class FuseStep : public DecoderStep {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    *tokens = {JoinAll(*tokens)};
  }
  void DecodePiece(std::string*, bool) const override {}
  bool joins() const override { return true; }
};

class StripStep : public DecoderStep {
 public:
  StripStep(std::string content, int start, int stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}

  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& token : *tokens) DecodePiece(&token, false);
  }
  void DecodePiece(std::string* token, bool) const override {
    const size_t n = content_.size();
    size_t begin = 0;
    for (int i = 0; i < start_ && begin + n <= token->size() &&
                    token->compare(begin, n, content_) == 0;
         ++i) {
      begin += n;
    }
    size_t end = token->size();
    for (int i = 0; i < stop_ && end >= begin + n &&
                    token->compare(end - n, n, content_) == 0;
         ++i) {
      end -= n;
    }
    *token = token->substr(begin, end - begin);
  }
  const std::string& content() const { return content_; }
  int start() const { return start_; }

 private:
  std::string content_;
  int start_;
  int stop_;
};

class ReplaceStep : public DecoderStep {
 public:
  explicit ReplaceStep(ReplaceRule rule) : rule_(std::move(rule)) {}

  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& token : *tokens) DecodePiece(&token, false);
  }
  void DecodePiece(std::string* token, bool) const override {
    // A regex only runs on valid UTF-8; a raw byte piece is left alone. A
    // failure (PCRE2 resource limits on one token) leaves the token as is.
    if (rule_.is_regex() && !IsValidUtf8(*token)) return;
    rule_.Apply(token).IgnoreError();
  }

 private:
  ReplaceRule rule_;
};

class MetaspaceStep : public DecoderStep {
 public:
  MetaspaceStep(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}

  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      DecodePiece(&(*tokens)[i], i == 0);
    }
  }
  void DecodePiece(std::string* token, bool first) const override {
    *token = absl::StrReplaceAll(
        *token, {{replacement_, first && strip_first_ ? "" : " "}});
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

absl::Status ParseSteps(const nlohmann::json& json, std::string_view path,
                        std::vector<std::unique_ptr<DecoderStep>>* steps);

absl::Status ParseSequence(const nlohmann::json& json, std::string_view path,
                           std::vector<std::unique_ptr<DecoderStep>>* steps) {
  TANDEM_ASSIGN_OR_RETURN(const nlohmann::json* list,
                          RequireField(json, "decoders", path));
  const std::string list_path = JsonPath(path, "decoders");
  if (!list->is_array()) return JsonError(list_path, "expected a list");
  for (size_t i = 0; i < list->size(); ++i) {
    TANDEM_RETURN_IF_ERROR(
        ParseSteps((*list)[i], JsonPath(list_path, i), steps));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<DecoderStep>> ParseStrip(
    const nlohmann::json& json, std::string_view path) {
  TANDEM_ASSIGN_OR_RETURN(std::string content,
                          RequireString(json, "content", path));
  TANDEM_ASSIGN_OR_RETURN(int64_t start, RequireInt(json, "start", path));
  TANDEM_ASSIGN_OR_RETURN(int64_t stop, RequireInt(json, "stop", path));
  if (content.empty() || start < 0 || stop < 0 || start > 1024 || stop > 1024) {
    return JsonError(path, "expected a character and counts in [0, 1024]");
  }
  return std::make_unique<StripStep>(
      std::move(content), static_cast<int>(start), static_cast<int>(stop));
}

absl::StatusOr<std::unique_ptr<DecoderStep>> ParseReplace(
    const nlohmann::json& json, std::string_view path) {
  TANDEM_ASSIGN_OR_RETURN(ReplaceRule rule, ReplaceRule::Parse(json, path));
  return std::make_unique<ReplaceStep>(std::move(rule));
}

absl::StatusOr<std::unique_ptr<DecoderStep>> ParseMetaspace(
    const nlohmann::json& json, std::string_view path) {
  TANDEM_ASSIGN_OR_RETURN(std::string replacement,
                          RequireString(json, "replacement", path));
  bool strip_first = true;
  if (json.contains("prepend_scheme")) {
    TANDEM_ASSIGN_OR_RETURN(std::string scheme,
                            RequireString(json, "prepend_scheme", path));
    if (scheme != "always" && scheme != "first" && scheme != "never") {
      return JsonError(JsonPath(path, "prepend_scheme"),
                       absl::StrCat("unknown prepend_scheme '", scheme, "'"));
    }
    strip_first = scheme != "never";
  } else {
    TANDEM_ASSIGN_OR_RETURN(strip_first,
                            OptionalBool(json, "add_prefix_space", path, true));
  }
  if (replacement.empty()) {
    return JsonError(JsonPath(path, "replacement"), "must not be empty");
  }
  return std::make_unique<MetaspaceStep>(std::move(replacement), strip_first);
}

absl::Status ParseSteps(const nlohmann::json& json, std::string_view path,
                        std::vector<std::unique_ptr<DecoderStep>>* steps) {
  if (json.is_null()) return absl::OkStatus();
  TANDEM_ASSIGN_OR_RETURN(std::string type, ComponentType(json, path));
  std::unique_ptr<DecoderStep> step;
  if (type == "Sequence") return ParseSequence(json, path, steps);
  if (type == "ByteLevel") {
    step = std::make_unique<ByteLevelStep>();
  } else if (type == "ByteFallback") {
    step = std::make_unique<ByteFallbackStep>();
  } else if (type == "Fuse") {
    step = std::make_unique<FuseStep>();
  } else if (type == "Strip") {
    TANDEM_ASSIGN_OR_RETURN(step, ParseStrip(json, path));
  } else if (type == "Replace") {
    TANDEM_ASSIGN_OR_RETURN(step, ParseReplace(json, path));
  } else if (type == "Metaspace") {
    TANDEM_ASSIGN_OR_RETURN(step, ParseMetaspace(json, path));
  } else {
    return UnsupportedType("decoder", type);
  }
  steps->push_back(std::move(step));
  return absl::OkStatus();
}

}  // namespace

TokenDecoder::TokenDecoder() = default;
TokenDecoder::TokenDecoder(TokenDecoder&&) = default;
TokenDecoder& TokenDecoder::operator=(TokenDecoder&&) = default;
TokenDecoder::~TokenDecoder() = default;

absl::StatusOr<TokenDecoder> TokenDecoder::FromJson(const nlohmann::json& json,
                                                    std::string_view path) {
  TokenDecoder decoder;
  TANDEM_RETURN_IF_ERROR(ParseSteps(json, path, &decoder.steps_));
  bool joined = false;
  for (const auto& step : decoder.steps_) {
    decoder.after_join_.push_back(joined);
    const auto* strip = dynamic_cast<const StripStep*>(step.get());
    if (joined && strip != nullptr && decoder.strip_count_ == 0) {
      decoder.strip_content_ = strip->content();
      decoder.strip_count_ = strip->start();
    }
    joined = joined || step->joins();
  }
  return decoder;
}

std::string TokenDecoder::Decode(std::vector<std::string> tokens) const {
  if (steps_.empty()) return absl::StrJoin(tokens, " ");
  for (const auto& step : steps_) step->DecodeChain(&tokens);
  return JoinAll(tokens);
}

std::string TokenDecoder::DecodePiece(std::string_view token,
                                      bool first) const {
  if (steps_.empty())
    return first ? std::string(token) : absl::StrCat(" ", AbslView(token));
  std::string piece(token);
  for (size_t i = 0; i < steps_.size(); ++i) {
    const bool text_strip =
        after_join_[i] && dynamic_cast<const StripStep*>(steps_[i].get());
    if (!text_strip) steps_[i]->DecodePiece(&piece, first);
  }
  return piece;
}

}  // namespace tandem
