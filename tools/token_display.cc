#include "tools/token_display.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/utf8.h"

namespace tandem {

std::string QuoteBytes(std::string_view bytes) {
  std::string out = "\"";
  for (size_t i = 0; i < bytes.size();) {
    const unsigned char c = bytes[i];
    if (c >= 0x80) {
      // A whole valid multi-byte character stays as it is.
      size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      if (len > 1 && i + len <= bytes.size() &&
          IsValidUtf8(bytes.substr(i, len))) {
        out.append(bytes.substr(i, len));
        i += len;
        continue;
      }
      absl::StrAppendFormat(&out, "\\x%02X", c);
    } else if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7F) {
      absl::StrAppendFormat(&out, "\\x%02X", c);
    } else {
      out.push_back(c);
    }
    ++i;
  }
  out.push_back('"');
  return out;
}

std::string DisplayToken(const Tokenizer& tokenizer, int32_t id) {
  absl::StatusOr<std::string> bytes = tokenizer.TokenBytes(id, false);
  if (!bytes.ok()) return absl::StrCat("<id ", id, ">");
  return QuoteBytes(*bytes);
}

std::string LogprobTable(const Tokenizer& tokenizer,
                         absl::Span<const GeneratedToken> tokens) {
  std::string out =
      "logprobs (natural log, the model's distribution):\n"
      "  index  id      token         logprob  | top alternatives\n";
  for (size_t i = 0; i < tokens.size(); ++i) {
    const GeneratedToken& t = tokens[i];
    absl::StrAppendFormat(&out, "  %5d  %-6d  %-12s  %8.4f  |", i, t.token,
                          DisplayToken(tokenizer, t.token), t.logprob);
    for (const TokenLogprob& alt : t.top_logprobs) {
      absl::StrAppendFormat(&out, " %s %.4f",
                            DisplayToken(tokenizer, alt.token), alt.logprob);
    }
    out.push_back('\n');
  }
  return out;
}

}  // namespace tandem
