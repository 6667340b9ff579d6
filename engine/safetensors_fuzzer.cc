// libFuzzer target: arbitrary bytes through the safetensors parser, then
// every convertible tensor it accepts through the F32 conversion.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "engine/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto contents =
      tandem::ParseSafetensors(absl::MakeConstSpan(data, size), "fuzz");
  if (!contents.ok()) return 0;
  std::vector<float> out;
  for (const tandem::SafetensorsTensor& t : contents->tensors) {
    // Parsing guarantees the data lies inside the input, so this allocation
    // is bounded by the input's size.
    out.resize(t.num_elements);
    (void)tandem::ConvertToF32(t, absl::MakeSpan(out));
  }
  return 0;
}
