// libFuzzer target: arbitrary bytes as a message index file (docs/formats/index-files.md).
// Opening must refuse anything malformed; every posting returned must lie inside the ranges
// the checked header states.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "index/segment_index.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace msgstore::index;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  std::uint64_t bytes_read = 0;
  auto file = SegmentIndexFile::open(memory_file(bytes), bytes_read);
  if (!file) return 0;
  const IndexFileHeader& header = (*file)->header();
  // Probe a few terms: ones from the input and fixed ones.
  std::vector<std::uint64_t> terms = {0, 1, key_term("k"), subject_term("a.b")};
  for (std::size_t at = 64; at + 8 <= size && terms.size() < 64; at += 24) {
    std::uint64_t term = 0;
    for (int i = 0; i < 8; ++i) term |= std::uint64_t{data[at + i]} << (8 * i);
    terms.push_back(term);
  }
  for (std::uint64_t term : terms) {
    (void)(*file)->might_contain(term);
    std::vector<Posting> postings;
    if (!(*file)->postings(term, postings, bytes_read).is_ok()) continue;
    for (const Posting& posting : postings) {
      if (posting.relative_offset >= header.next_offset - header.base_offset || posting.position >= header.log_bytes) std::abort();
    }
  }
  return 0;
}
