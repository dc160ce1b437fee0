#include "compiler/import/Source.h"

#include <sys/mman.h>
#include <unistd.h>

#include "fmt/format.h"

namespace tern::compiler {

void SourceModel::release(std::span<const uint8_t> bytes) const {
  // Rounded out to whole pages, which stay inside the mapping (it starts on
  // a page and covers the last one). A page shared with a neighbour another
  // thread still reads is simply faulted back in: the mapping is read-only
  // and private, so its contents are always the file's.
  static const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  std::span<const uint8_t> all = file->bytes();
  if (bytes.empty() || bytes.data() < all.data() ||
      bytes.data() + bytes.size() > all.data() + all.size())
    return;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(bytes.data()) / page * page;
  const uintptr_t end =
      (reinterpret_cast<uintptr_t>(bytes.data()) + bytes.size() + page - 1) / page * page;
  ::madvise(reinterpret_cast<void *>(begin), end - begin, MADV_DONTNEED);
}

absl::StatusOr<std::shared_ptr<const SourceModel>> openSourceModel(const std::string &path,
                                                                   formats::I2SLayout i2sLayout) {
  formats::MappingOptions mopts;
  mopts.i2sLayout = i2sLayout;
  absl::StatusOr<std::unique_ptr<gguf::File>> opened = gguf::File::open(path);
  if (!opened.ok())
    return absl::Status(opened.status().code(),
                        "cannot read GGUF: " + std::string(opened.status().message()));
  auto s = std::make_shared<SourceModel>();
  s->path = path;
  s->file = std::move(*opened);
  s->mapping = formats::verifyMapping(*s->file, mopts);
  s->i2sLayout = i2sLayout;
  return std::shared_ptr<const SourceModel>(std::move(s));
}

} // namespace tern::compiler
