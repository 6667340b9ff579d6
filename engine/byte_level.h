// The byte-level alphabet of GPT-2-style tokenizers (Llama 3, Qwen2): each
// of the 256 byte values is shown as one printable Unicode character, so
// that BPE works on characters while every byte sequence stays encodable.
// Printable Latin-1 bytes (0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF) stand for
// themselves; the other 68 bytes map, in order, to U+0100 onwards (the
// space 0x20 becomes U+0120 'Ġ', the newline 0x0A becomes U+010A 'Ċ').
// Constant tables; thread-safe.
#ifndef TANDEM_ENGINE_BYTE_LEVEL_H_
#define TANDEM_ENGINE_BYTE_LEVEL_H_

#include <string>
#include <string_view>

namespace tandem {

// Appends the byte-level characters (UTF-8) of every byte in `bytes`.
void AppendByteLevelChars(std::string_view bytes, std::string* out);

// Appends to `out` the bytes that the byte-level characters of `token`
// stand for and returns true; returns false, appending nothing, if `token`
// holds a character outside the alphabet. REQUIRES: `token` is valid UTF-8.
bool AppendByteLevelBytes(std::string_view token, std::string* out);

}  // namespace tandem

#endif  // TANDEM_ENGINE_BYTE_LEVEL_H_
