// UTF-8 helpers for the tokenizers: validation, decoding one character,
// and the lossy conversion that turns invalid bytes into U+FFFD.
//
// Invalid input is replaced the way Unicode's "maximal subpart" practice
// says (and Rust's String::from_utf8_lossy does): each maximal prefix of a
// well-formed sequence that cannot be completed becomes one U+FFFD, and a
// byte that cannot start any sequence becomes one U+FFFD. Pure functions,
// safe from any thread.
#ifndef TANDEM_ENGINE_UTF8_H_
#define TANDEM_ENGINE_UTF8_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace tandem {

// U+FFFD REPLACEMENT CHARACTER, UTF-8 encoded.
inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

// Whether `bytes` is well-formed UTF-8 (no surrogates, no overlong forms,
// nothing above U+10FFFF).
bool IsValidUtf8(std::string_view bytes);

// Decodes the character that starts at `bytes[pos]`, storing it in `*cp`
// and returning its length in bytes. REQUIRES: `bytes` is valid UTF-8 and
// pos < bytes.size().
size_t DecodeUtf8Char(std::string_view bytes, size_t pos, char32_t* cp);

// Appends the UTF-8 encoding of `cp` to `out`. REQUIRES: cp is a Unicode
// scalar value (at most U+10FFFF, not a surrogate).
void AppendUtf8(char32_t cp, std::string* out);

// Appends `bytes` to `out` with every invalid sequence replaced by U+FFFD
// (maximal subparts, see above).
void AppendUtf8Lossy(std::string_view bytes, std::string* out);

// As AppendUtf8Lossy, except that an incomplete but so far well-formed
// sequence at the very end of `bytes` is left unconverted. Returns how many
// bytes were consumed; the rest (at most 3 bytes) may still become a
// character when more bytes arrive.
size_t AppendCompleteUtf8Lossy(std::string_view bytes, std::string* out);

}  // namespace tandem

#endif  // TANDEM_ENGINE_UTF8_H_
