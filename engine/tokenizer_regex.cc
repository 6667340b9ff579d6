#include "engine/tokenizer_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/strings/str_cat.h"
#include "engine/tokenizer_json.h"

namespace tandem {
namespace {

std::string Pcre2Message(int code) {
  PCRE2_UCHAR buffer[256];
  if (pcre2_get_error_message(code, buffer, sizeof(buffer)) < 0) {
    return absl::StrCat("PCRE2 error ", code);
  }
  return reinterpret_cast<const char*>(buffer);
}

struct MatchDataDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};

// Length of the UTF-8 character starting with byte `b` (1 for stray bytes,
// which valid input never has).
size_t CharLength(unsigned char b) {
  if (b >= 0xF0) return 4;
  if (b >= 0xE0) return 3;
  if (b >= 0xC0) return 2;
  return 1;
}

// Unicode White_Space, which is what \s matches in Oniguruma (Hugging
// Face's regex engine). PCRE2's \s also matches U+180E MONGOLIAN VOWEL
// SEPARATOR, white space before Unicode 6.3.
// It ends in a property, so a '-' after it in a class stays a literal.
constexpr std::string_view kWhiteSpace = "\\x09-\\x0D\\x85\\p{Z}";

// Rewrites \s (in and out of character classes) and \S (outside them) as
// the explicit White_Space set.
std::string WithWhiteSpaceClass(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 16);
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char next = pattern[++i];
      if (next == 's') {
        out += in_class ? std::string(kWhiteSpace)
                        : absl::StrCat("[", AbslView(kWhiteSpace), "]");
      } else if (next == 'S' && !in_class) {
        out += absl::StrCat("[^", AbslView(kWhiteSpace), "]");
      } else {
        out += c;
        out += next;
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      // A ']' (or '^]') right after the opening bracket is a literal.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

}  // namespace

struct TokenizerRegex::Code {
  ~Code() { pcre2_code_free(code); }
  pcre2_code* code = nullptr;
};

absl::StatusOr<TokenizerRegex> TokenizerRegex::Compile(std::string_view pattern,
                                                       bool literal,
                                                       std::string_view path) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  const uint32_t options =
      literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP;
  const std::string source =
      literal ? std::string(pattern) : WithWhiteSpaceClass(pattern);
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(),
                    options, &error, &offset, nullptr);
  if (code == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokenizer.json: ", AbslView(path), ": bad regex at offset ", offset,
        ": ", Pcre2Message(error)));
  }
  // JIT is only an optimization; without it PCRE2 interprets the pattern.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  auto holder = std::make_shared<Code>();
  holder->code = code;
  return TokenizerRegex(std::move(holder));
}

absl::Status TokenizerRegex::FindAll(std::string_view text,
                                     std::vector<MatchSpan>* matches) const {
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> data(
      pcre2_match_data_create_from_pattern(code_->code, nullptr));
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    int rc = pcre2_match(code_->code, subject, text.size(), start,
                         PCRE2_NO_UTF_CHECK, data.get(), nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      rc = pcre2_match(code_->code, subject, text.size(), start,
                       PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, data.get(), nullptr);
    }
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tokenizer regex failed on the input: ", Pcre2Message(rc)));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
    const size_t begin = ovector[0];
    const size_t end = ovector[1];
    matches->emplace_back(begin, end);
    if (end > begin) {
      start = end;
    } else if (end >= text.size()) {
      break;
    } else {
      start = end + CharLength(static_cast<unsigned char>(text[end]));
    }
  }
  return absl::OkStatus();
}

absl::Status TokenizerRegex::ReplaceAll(std::string_view replacement,
                                        std::string* text) const {
  std::vector<MatchSpan> matches;
  absl::Status status = FindAll(*text, &matches);
  if (!status.ok() || matches.empty()) return status;
  std::string out;
  out.reserve(text->size());
  size_t prev = 0;
  for (const auto& [begin, end] : matches) {
    out.append(*text, prev, begin - prev);
    out.append(replacement);
    prev = end;
  }
  out.append(*text, prev, std::string::npos);
  *text = std::move(out);
  return absl::OkStatus();
}

}  // namespace tandem
